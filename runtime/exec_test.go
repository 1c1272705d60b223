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
