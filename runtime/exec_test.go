package runtime

import (
	"bytes"
	"strings"
	"testing"
)

func TestExecOutputFitsTheBudget(t *testing.T) {
	big := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	for _, test := range []struct {
		name         string
		a, b         int
		budget       int
		wantA, wantB int
		cutA, cutB   bool
	}{
		{name: "fits", a: 10, b: 20, budget: 100, wantA: 10, wantB: 20},
		{name: "stdout over", a: 500, b: 0, budget: 100, wantA: 100, wantB: 0, cutA: true},
		{name: "stderr over, stdout small", a: 10, b: 500, budget: 100, wantA: 10, wantB: 90, cutB: true},
		{name: "both over", a: 500, b: 400, budget: 100, wantA: 50, wantB: 50, cutA: true, cutB: true},
	} {
		t.Run(test.name, func(t *testing.T) {
			a, b := fitBudget(big(test.a), big(test.b), test.budget)
			if len(a) != test.wantA || len(b) != test.wantB {
				t.Errorf("lengths %d, %d; want %d, %d", len(a), len(b), test.wantA, test.wantB)
			}
			if strings.HasSuffix(string(a), TruncatedMarker) != test.cutA || strings.HasSuffix(string(b), TruncatedMarker) != test.cutB {
				t.Errorf("markers: a %v b %v; want %v %v", strings.HasSuffix(string(a), TruncatedMarker), strings.HasSuffix(string(b), TruncatedMarker), test.cutA, test.cutB)
			}
		})
	}
}

// cappedBuffer keeps the first limit bytes and never holds more memory than limit: a
// bytes.Buffer doubled to twice the output, and a copy on the way out made an ExecSync of
// 600 MB grow berthd by 133 MiB (TestAdvisoryExecSyncOutputIsBounded under load).
func TestCappedBuffer(t *testing.T) {
	for _, tc := range []struct {
		desc      string
		limit     int
		writes    []int
		want      int
		truncated bool
	}{
		{desc: "under the limit", limit: 1 << 20, writes: []int{100, 200}, want: 300},
		{desc: "exactly the limit", limit: 64 << 10, writes: []int{32 << 10, 32 << 10}, want: 64 << 10},
		{desc: "over in one write", limit: 64 << 10, writes: []int{100 << 10}, want: 64 << 10, truncated: true},
		{desc: "over after many", limit: 1 << 20, writes: []int{300 << 10, 300 << 10, 300 << 10, 300 << 10, 1}, want: 1 << 20, truncated: true},
		{desc: "nothing", limit: 1 << 20, writes: nil, want: 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b := &cappedBuffer{limit: tc.limit}
			var all []byte
			for i, n := range tc.writes {
				p := bytes.Repeat([]byte{byte('a' + i)}, n)
				all = append(all, p...)
				if got, err := b.Write(p); got != n || err != nil {
					t.Fatalf("Write(%d) = %d, %v", n, got, err)
				}
				if cap(b.buf) > tc.limit {
					t.Fatalf("holds %d bytes of memory, limit %d", cap(b.buf), tc.limit)
				}
			}
			out := b.Bytes()
			want := all[:tc.want]
			if tc.truncated {
				want = append(bytes.Clone(want), TruncatedMarker...)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("Bytes: %d bytes, want %d (truncated %v)", len(out), len(want), tc.truncated)
			}
		})
	}
}
