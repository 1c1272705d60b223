package cri

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestCRISignal(t *testing.T) {
	tests := []struct {
		desc, in string
		want     runtimeapi.Signal
	}{
		{desc: "none is SIGTERM", in: "", want: runtimeapi.Signal_SIGNAL_SIGTERM},
		{desc: "full name", in: "SIGUSR1", want: runtimeapi.Signal_SIGNAL_SIGUSR1},
		{desc: "short name", in: "QUIT", want: runtimeapi.Signal_SIGNAL_SIGQUIT},
		{desc: "number", in: "9", want: runtimeapi.Signal_SIGNAL_SIGKILL},
		{desc: "not a signal", in: "SIGNOPE", want: runtimeapi.Signal_SIGNAL_SIGTERM},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			if got := criSignal(test.in); got != test.want {
				t.Errorf("criSignal(%q) = %v, want %v", test.in, got, test.want)
			}
		})
	}
}
