package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-runtime/berth/runtime/namespace"
)

// interfaceCounters are an interface's traffic counters.
type interfaceCounters struct {
	Name                                 string
	RxBytes, RxErrors, TxBytes, TxErrors uint64
}

// networkCounters reads the counters of every interface but lo in the network namespace pinned
// podNetworkCounters reads the interface counters of the network namespace pinned at netns:
// through /proc/<pid>/net/dev of one of pids (the pod's processes) that is in it, a file read
// where joining the namespace takes a locked thread and two setns calls; by joining it when
// none is (a pod with no running process).
func podNetworkCounters(netns string, pids []uint32) ([]interfaceCounters, error) {
	var want unix.Stat_t
	if err := unix.Stat(netns, &want); err == nil {
		for _, pid := range pids {
			var have unix.Stat_t
			// The process must still be in it: a pid can be reused.
			if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &have) != nil || have.Ino != want.Ino || have.Dev != want.Dev {
				continue
			}
			if data, err := readFile(fmt.Sprintf("/proc/%d/net/dev", pid)); err == nil {
				return parseNetDev(data)
			}
		}
	}
	return networkCounters(netns)
}

// at netns, from /proc/thread-self/net/dev read on a thread inside it.
func networkCounters(netns string) ([]interfaceCounters, error) {
	var data []byte
	err := namespace.Do(namespace.Net, netns, func() (err error) {
		data, err = os.ReadFile("/proc/thread-self/net/dev")
		return err
	})
	if err != nil {
		return nil, err
	}
	return parseNetDev(data)
}

// parseNetDev parses /proc/net/dev: two header lines, then "name: rx-bytes packets errs drop
// fifo frame compressed multicast tx-bytes packets errs ...".
func parseNetDev(data []byte) ([]interfaceCounters, error) {
	var out []interfaceCounters
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 0; sc.Scan(); line++ {
		if line < 2 {
			continue
		}
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			return nil, fmt.Errorf("net/dev line %d: %q", line+1, sc.Text())
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("net/dev line %d: %d fields", line+1, len(f))
		}
		if name == "lo" {
			continue
		}
		n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
		out = append(out, interfaceCounters{Name: name, RxBytes: n(0), RxErrors: n(2), TxBytes: n(8), TxErrors: n(10)})
	}
	return out, sc.Err()
}
