package runtime

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// blockedWriter never returns until released: a client that stopped reading.
type blockedWriter struct{ release chan struct{} }

func (w blockedWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("client gone") }

func TestFanoutSendsToEveryAttachedWriter(t *testing.T) {
	var f fanout
	f.Write([]byte("before\n")) // nobody attached: dropped, never blocks
	var a, b lockedBuffer
	_, detachA := f.attach(&a)
	_, detachB := f.attach(&b)
	f.Write([]byte("one\n"))
	detachA()
	f.Write([]byte("two\n"))
	detachB()
	if a.String() != "one\n" || b.String() != "one\ntwo\n" {
		t.Errorf("a got %q, b got %q", a.String(), b.String())
	}
}

func TestFanoutCutsOffASlowOrFailedWriter(t *testing.T) {
	var f fanout
	slow := blockedWriter{release: make(chan struct{})}
	defer close(slow.release)
	slowDone, _ := f.attach(slow)
	failDone, _ := f.attach(failingWriter{})
	var fast lockedBuffer
	_, detachFast := f.attach(&fast)
	start := time.Now()
	for i := range attachQueue + 10 {
		f.Write([]byte("x"))
		for i%64 == 63 && len(fast.String()) < i+1 && time.Since(start) < time.Second {
			time.Sleep(time.Millisecond) // a reader that keeps up
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("writes took %s with a stuck client attached", d)
	}
	for name, done := range map[string]<-chan struct{}{"slow": slowDone, "failed": failDone} {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s writer was not cut off", name)
		}
	}
	detachFast()
	if got := len(fast.String()); got != attachQueue+10 {
		t.Errorf("fast writer got %d bytes, want %d", got, attachQueue+10)
	}
}

// The end of a stream is not a writer's end: an attach to the container's stdout must not end
// because its stderr closed first, with stdout's last output still on its way (the attach ends
// with the container, whose exit comes once both are drained).
func TestFanoutEndIsNotACutOff(t *testing.T) {
	var f fanout
	var w lockedBuffer
	done, detach := f.attach(&w)
	f.Write([]byte("last\n"))
	f.close()
	select {
	case <-done:
		t.Error("the stream's end closed done, as if the writer had stopped taking output")
	default:
	}
	detach()
	if w.String() != "last\n" {
		t.Errorf("writer got %q, want what was written before the end", w.String())
	}
}
