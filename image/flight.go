package image

import (
	"context"
	"sync"
)

// flights lets concurrent pulls of one reference share one download. The shared pull runs in a
// context of its own that is cancelled only when every caller waiting for it has given up, so one
// impatient kubelet request does not fail the others, and a pull nobody waits for stops.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done    chan struct{}
	id      string
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do runs fn for key unless a run for key is under way, in which case it waits for that run.
func (fs *flights) do(ctx context.Context, key string, fn func(context.Context) (string, error)) (string, error) {
	fs.mu.Lock()
	if fs.m == nil {
		fs.m = map[string]*flight{}
	}
	f, ok := fs.m[key]
	if !ok {
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		fs.m[key] = f
		go func() {
			f.id, f.err = fn(runCtx)
			cancel()
			fs.mu.Lock()
			fs.forget(key, f)
			fs.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	fs.mu.Unlock()

	select {
	case <-f.done:
		fs.leave(key, f)
		return f.id, f.err
	case <-ctx.Done():
		fs.leave(key, f)
		return "", ctx.Err()
	}
}

// leave drops a waiter and cancels the run when none is left; a caller that comes later starts
// a new run rather than joining the cancelled one.
func (fs *flights) leave(key string, f *flight) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f.waiters--
	if f.waiters == 0 {
		f.cancel()
		fs.forget(key, f)
	}
}

// forget removes f from the map if it is still the run for key. fs.mu must be held.
func (fs *flights) forget(key string, f *flight) {
	if fs.m[key] == f {
		delete(fs.m, key)
	}
}
