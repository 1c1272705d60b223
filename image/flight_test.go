package image

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFlightsShareOneRun(t *testing.T) {
	var fs flights
	var runs atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]string, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := fs.do(context.Background(), "busybox", func(context.Context) (string, error) {
				runs.Add(1)
				<-release
				return "sha256:x", nil
			})
			if err != nil {
				t.Error(err)
			}
			results[i] = id
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if runs.Load() != 1 {
		t.Errorf("ran %d times, want 1", runs.Load())
	}
	for _, r := range results {
		if r != "sha256:x" {
			t.Errorf("result %q, want sha256:x", r)
		}
	}
}

func TestFlightsCancelWhenAllWaitersLeave(t *testing.T) {
	tests := []struct {
		desc        string
		waiters     int
		cancelled   int
		wantStopped bool
	}{
		{desc: "one of two gives up: the run goes on", waiters: 2, cancelled: 1, wantStopped: false},
		{desc: "every waiter gives up: the run stops", waiters: 2, cancelled: 2, wantStopped: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			var fs flights
			stopped := make(chan struct{})
			started := make(chan struct{})
			var once sync.Once
			fn := func(ctx context.Context) (string, error) {
				once.Do(func() { close(started) })
				select {
				case <-ctx.Done():
					close(stopped)
					return "", ctx.Err()
				case <-time.After(300 * time.Millisecond):
					return "id", nil
				}
			}
			var wg sync.WaitGroup
			cancels := make([]context.CancelFunc, test.waiters)
			for i := range test.waiters {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				cancels[i] = cancel
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := fs.do(ctx, "k", fn)
					if i < test.cancelled && !errors.Is(err, context.Canceled) {
						t.Errorf("cancelled waiter got %v", err)
					}
				}()
			}
			<-started
			time.Sleep(20 * time.Millisecond) // let every waiter join
			for _, cancel := range cancels[:test.cancelled] {
				cancel()
			}
			wg.Wait()
			select {
			case <-stopped:
				if !test.wantStopped {
					t.Error("run was cancelled although a waiter remained")
				}
			case <-time.After(500 * time.Millisecond):
				if test.wantStopped {
					t.Error("run went on with no waiter left")
				}
			}
		})
	}
}
