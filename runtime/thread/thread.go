// Package thread runs work that blocks in system calls on an OS thread that exits with it.
//
// Go never ends a thread it has made: every goroutine blocked in a system call (waiting for a
// CNI plugin or a shim's start command, mounting, writing a file) holds a thread, and once the
// calls return the threads stay, idle, each with about 50 KiB of stacks. A burst of pods left
// berthd with hundreds of them (12 MiB of its 28 MiB of anonymous memory). Work run through
// Run ends its thread instead, so berthd's thread count follows its load down again.
package thread

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Run runs fn on the calling goroutine's current thread, locked to it, and ends that thread when
// fn returns (Go starts a new one when it needs one). A panic in fn is raised again in the
// caller, with fn's stack.
func Run(fn func()) {
	var caught *Panic
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: a goroutine that exits locked takes its thread with it.
		runtime.LockOSThread()
		defer func() {
			if r := recover(); r != nil {
				caught = &Panic{Value: r, Stack: debug.Stack()}
			}
		}()
		fn()
	}()
	<-done
	if caught != nil {
		panic(caught)
	}
}

// Panic is a panic raised in a function given to Run.
type Panic struct {
	Value any
	Stack []byte
}

func (p *Panic) String() string { return fmt.Sprintf("%v\n%s", p.Value, p.Stack) }
