package runtime

import (
	"context"
	"fmt"
	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"google.golang.org/protobuf/proto"
	"log/slog"
	"strings"
	"testing"
)

// recorder is a slog handler that keeps what it is given, as "LEVEL line [xN]".
type recorder struct{ got []string }

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recorder) WithGroup(string) slog.Handler            { return h }
func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	s := r.Level.String()
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "line":
			s += " " + a.Value.String()
		case "repeated":
			s += fmt.Sprintf(" x%d", a.Value.Int64())
		}
		return true
	})
	h.got = append(h.got, s)
	return nil
}

func TestForwardShimLog(t *testing.T) {
	epoll := func(ts string) string {
		return `time="` + ts + `" level=error msg="cgroups: epoll wait" error=shutdown`
	}
	for _, test := range []struct {
		desc string
		in   []string
		want []string
	}{
		{"levels", []string{`time="t1" level=info msg="starting"`, `time="t2" level=warning msg="slow"`, `time="t3" level=error msg="bad"`},
			[]string{`DEBUG time="t1" level=info msg="starting"`, `WARN time="t2" level=warning msg="slow"`, `WARN time="t3" level=error msg="bad"`}},
		{"a repeated message is logged once, with its count", []string{epoll("t1"), epoll("t2"), epoll("t3"), `time="t4" level=info msg="done"`},
			[]string{"WARN " + epoll("t1"), `WARN level=error msg="cgroups: epoll wait" error=shutdown x2`, `DEBUG time="t4" level=info msg="done"`}},
		{"repeats up to the end are counted too", []string{epoll("t1"), epoll("t2")},
			[]string{"WARN " + epoll("t1"), `WARN level=error msg="cgroups: epoll wait" error=shutdown x1`}},
		{"a line that is not logrus text", []string{"panic: oops", "panic: oops"}, []string{"WARN panic: oops", "WARN panic: oops x1"}},
	} {
		t.Run(test.desc, func(t *testing.T) {
			h := &recorder{}
			forwardShimLog(slog.New(h), strings.NewReader(strings.Join(test.in, "\n")+"\n"))
			if strings.Join(h.got, "\n") != strings.Join(test.want, "\n") {
				t.Errorf("forwarded:\n%s\nwant:\n%s", strings.Join(h.got, "\n"), strings.Join(test.want, "\n"))
			}
		})
	}
}

func TestShimStartAddress(t *testing.T) {
	const addr = "unix:///run/containerd/s/0123abcd"
	bootstrap, err := proto.Marshal(&bootapi.BootstrapResult{Version: 3, Address: addr, Protocol: "ttrpc"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc    string
		out     []byte
		wantErr bool
	}{
		{desc: "bootstrap result of a 2.3+ shim", out: bootstrap},
		{desc: "JSON of a 2.0-2.2 shim", out: []byte(`{"version":3,"address":"` + addr + `","protocol":"ttrpc"}`)},
		{desc: "bare address of an older shim", out: []byte(addr + "\n")},
		{desc: "anything else", out: []byte("shim says no"), wantErr: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			got, err := shimStartAddress(test.out)
			if test.wantErr {
				if err == nil {
					t.Errorf("shimStartAddress = %q, want an error", got)
				}
				return
			}
			if err != nil || got != addr {
				t.Errorf("shimStartAddress = %q, %v; want %q", got, err, addr)
			}
		})
	}
}
