package runtime

import (
	"reflect"
	"testing"
)

func TestParseNetDev(t *testing.T) {
	data := []byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    1296      14    1    0    0     0          0         0      726       9    2    0    0     0       0          0
`)
	got, err := parseNetDev(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []interfaceCounters{{Name: "eth0", RxBytes: 1296, RxErrors: 1, TxBytes: 726, TxErrors: 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := parseNetDev([]byte("h1\nh2\neth0: 1 2 3\n")); err == nil {
		t.Error("short line accepted")
	}
}
