package thread

import (
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func threads(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skip(err)
	}
	return len(entries)
}

// Threads blocked in system calls at once are gone after Run returns; without Run they stay.
func TestRunEndsItsThread(t *testing.T) {
	block := func() { syscall.Nanosleep(&syscall.Timespec{Nsec: int64(50 * time.Millisecond)}, nil) }
	// burst makes 40 blocking calls at once through run, then counts the threads once there
	// are at most want of them, or after 2 s: a thread that ends is reaped by the kernel a
	// moment after its goroutine returns, later on a loaded machine (make test found 16 after a
	// fixed 50 ms while the other packages' tests ran).
	burst := func(run func(func()), want int) int {
		var wg sync.WaitGroup
		for range 40 {
			wg.Add(1)
			go func() { defer wg.Done(); run(block) }()
		}
		wg.Wait()
		n := threads(t)
		for deadline := time.Now().Add(2 * time.Second); n > want && time.Now().Before(deadline); n = threads(t) {
			time.Sleep(20 * time.Millisecond)
		}
		return n
	}
	before := threads(t)
	withRun := burst(Run, before+8)
	plain := burst(func(f func()) { f() }, before+8)
	t.Logf("threads: %d before, %d after Run, %d after plain calls", before, withRun, plain)
	if withRun > before+8 {
		t.Errorf("threads: %d before, %d after 40 blocking calls through Run; want about as many as before", before, withRun)
	}
	if plain < before+20 {
		t.Logf("threads: %d after 40 plain blocking calls (the runtime kept few: the test shows nothing)", plain)
	}
}

func TestRunRaisesPanicsInTheCaller(t *testing.T) {
	defer func() {
		p, ok := recover().(*Panic)
		if !ok || p.Value != "boom" || !strings.Contains(string(p.Stack), "thread_test.go") {
			t.Errorf("recovered %v; want the panic with its stack", p)
		}
	}()
	Run(func() { panic("boom") })
}
