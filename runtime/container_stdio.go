package runtime

import (
	"bytes"
	"io"
	"sync"
)

// attachQueue is how many chunks of output an attached client may be behind before it is cut
// off: a slow client never holds the container's output (and so the container) back.
const attachQueue = 256

// stdio is a started container's standard streams as berthd holds them: the write end of its
// stdin (nil when it has none) and its output, fanned out to attached clients on its way to the
// log file.
type stdio struct {
	stdinMu sync.Mutex
	stdin   io.WriteCloser

	stdout, stderr fanout
}

// writeStdin writes an attached client's input to the container's stdin.
func (s *stdio) writeStdin(p []byte) (int, error) {
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.stdin == nil {
		return 0, io.ErrClosedPipe
	}
	return s.stdin.Write(p)
}

// closeStdin closes the container's stdin, so that its process reads end-of-file.
func (s *stdio) closeStdin() {
	s.stdinMu.Lock()
	defer s.stdinMu.Unlock()
	if s.stdin != nil {
		s.stdin.Close()
		s.stdin = nil
	}
}

// fanout copies what is written to it to every attached writer, each through its own queue.
type fanout struct {
	mu    sync.Mutex
	sinks map[*sink]struct{}
}

// sink is one attached writer; done is closed when it stops taking output (detached, its writer
// failed, or it fell too far behind), not when the stream ends.
type sink struct {
	queue chan []byte
	done  chan struct{}
}

// Write never blocks and never fails: the log file is the record, attached clients are viewers.
func (f *fanout) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.sinks {
		select {
		case s.queue <- bytes.Clone(p):
		default:
			f.dropLocked(s)
		}
	}
	return len(p), nil
}

// attach sends the output from now on to w until detach is called; done is closed when w
// stops taking it.
func (f *fanout) attach(w io.Writer) (done <-chan struct{}, detach func()) {
	s := &sink{queue: make(chan []byte, attachQueue), done: make(chan struct{})}
	f.mu.Lock()
	if f.sinks == nil {
		f.sinks = map[*sink]struct{}{}
	}
	f.sinks[s] = struct{}{}
	f.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for b := range s.queue {
			if _, err := w.Write(b); err != nil {
				f.drop(s)
				for range s.queue { // drain until closed
				}
				return
			}
		}
	}()
	return s.done, func() {
		f.drop(s)
		<-finished // every byte queued before the detach is written
	}
}

// close detaches every writer, each after what was queued for it: the stream has ended. Their
// done stays open (they did not stop taking output): an attach ends with the container, whose
// other stream may still be delivering its last output.
func (f *fanout) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.sinks {
		delete(f.sinks, s)
		close(s.queue)
	}
}

func (f *fanout) drop(s *sink) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropLocked(s)
}

func (f *fanout) dropLocked(s *sink) {
	if _, ok := f.sinks[s]; !ok {
		return
	}
	delete(f.sinks, s)
	close(s.queue)
	close(s.done)
}
