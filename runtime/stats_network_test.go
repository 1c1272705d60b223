package runtime

import (
	"os"
	"reflect"
	"testing"
)

func TestParseNetDev(t *testing.T) {
	data := []byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    1296      14    1    3    0     0          0         0      726       9    2    4    0     0       0          0
`)
	got, err := parseNetDev(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []InterfaceCounters{{Name: "eth0", RxBytes: 1296, RxPackets: 14, RxErrors: 1, RxDropped: 3,
		TxBytes: 726, TxPackets: 9, TxErrors: 2, TxDropped: 4}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := parseNetDev([]byte("h1\nh2\neth0: 1 2 3\n")); err == nil {
		t.Error("short line accepted")
	}
}

// A pod's counters are read through one of its processes when it is in the pod's network
// namespace; a pid that is not (a reused one) is passed over.
func TestPodNetworkCountersThroughAProcess(t *testing.T) {
	data, err := os.ReadFile("/proc/self/net/dev")
	if err != nil {
		t.Skip(err)
	}
	want, err := parseNetDev(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := podNetworkCounters("/proc/self/ns/net", []uint32{uint32(os.Getpid())})
	if err != nil || len(got) != len(want) {
		t.Fatalf("podNetworkCounters = %v, %v; want the interfaces of %v", got, err, want)
	}
	for i := range want {
		if got[i].Name != want[i].Name {
			t.Errorf("interface %d = %s, want %s", i, got[i].Name, want[i].Name)
		}
	}
	// Process 1 of a container is not in this namespace, and no pid at all: the namespace is
	// joined instead (root only).
	if os.Geteuid() == 0 {
		if got, err := podNetworkCounters("/proc/self/ns/net", []uint32{1 << 30}); err != nil || len(got) != len(want) {
			t.Errorf("podNetworkCounters without a process in it = %v, %v", got, err)
		}
	}
}
