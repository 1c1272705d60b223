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

// InterfaceCounters are an interface's traffic counters.
type InterfaceCounters struct {
	Name                                 string
	RxBytes, RxErrors, TxBytes, TxErrors uint64
	RxPackets, RxDropped                 uint64
	TxPackets, TxDropped                 uint64
}

// networkCounters reads the counters of every interface but lo in the network namespace pinned
// podNetworkCounters reads the interface counters of the network namespace pinned at netns:
// through /proc/<pid>/net/dev of one of pids (the pod's processes) that is in it, a file read
// where joining the namespace takes a locked thread and two setns calls; by joining it when
// none is (a pod with no running process).
func podNetworkCounters(netns string, pids []uint32) ([]InterfaceCounters, error) {
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
func networkCounters(netns string) ([]InterfaceCounters, error) {
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
func parseNetDev(data []byte) ([]InterfaceCounters, error) {
	var out []InterfaceCounters
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
		out = append(out, InterfaceCounters{Name: name, RxBytes: n(0), RxPackets: n(1), RxErrors: n(2), RxDropped: n(3),
			TxBytes: n(8), TxPackets: n(9), TxErrors: n(10), TxDropped: n(11)})
	}
	return out, sc.Err()
}
