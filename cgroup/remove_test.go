package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// testCgroup makes the cgroup path (cgroupfs) in every hierarchy of the node and returns the
// hierarchies; it skips the test where cgroups cannot be made (not root).
func testCgroup(t *testing.T, path string) []string {
	t.Helper()
	hierarchies, err := nodeHierarchies()
	if err != nil || len(hierarchies) == 0 {
		t.Skipf("no cgroup hierarchies: %v", err)
	}
	for _, h := range hierarchies {
		if err := os.MkdirAll(filepath.Join(h, path), 0o755); err != nil {
			t.Skipf("cannot make cgroups here: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, h := range hierarchies {
			removeTree(filepath.Join(h, filepath.Dir(path)))
		}
	})
	return hierarchies
}

// sleeper runs a process in the cgroup dir of one hierarchy and returns a func that kills it.
func sleeper(t *testing.T, dir string) (kill func()) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("move the process into %s: %v", dir, err)
	}
	done := false
	kill = func() {
		if !done {
			done = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(kill)
	return kill
}

// A pod cgroup with a container's below it (as runc leaves them when it is cut off): Remove
// waits while a process is in it, says so when its time is up, and removes the whole tree, in
// every hierarchy, once the process is gone.
func TestRemoveWaitsForProcessesAndRemovesTheTree(t *testing.T) {
	pod := fmt.Sprintf("/berth-cgroup-test-%d/pod", os.Getpid())
	ctr := pod + "/0123456789abcdef"
	hierarchies := testCgroup(t, ctr)
	kill := sleeper(t, filepath.Join(hierarchies[0], ctr))
	r := NewRemover(Cgroupfs)
	if !r.Exists(pod) {
		t.Fatalf("Exists(%s) = false for a cgroup that is there", pod)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := r.Remove(ctx, pod); !errors.Is(err, ErrBusy) {
		t.Fatalf("Remove of a cgroup with a process in it: %v, want ErrBusy", err)
	}
	if _, err := os.Stat(filepath.Join(hierarchies[0], ctr)); err != nil {
		t.Fatalf("the busy cgroup went: %v", err)
	}

	go func() { time.Sleep(200 * time.Millisecond); kill() }()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Remove(ctx, pod); err != nil {
		t.Fatalf("Remove once the process is gone: %v", err)
	}
	for _, h := range hierarchies {
		if _, err := os.Stat(filepath.Join(h, pod)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left (%v)", filepath.Join(h, pod), err)
		}
	}
	if r.Exists(pod) {
		t.Errorf("Exists(%s) = true after Remove", pod)
	}
	if err := r.Remove(ctx, pod); err != nil {
		t.Errorf("Remove of a cgroup that is gone: %v", err)
	}
}

func TestRemoveRefusesTheRoot(t *testing.T) {
	r := &Remover{driver: Cgroupfs, hierarchies: func() ([]string, error) { return []string{t.TempDir()}, nil }}
	for _, path := range []string{"/", "", "/..", "../.."} {
		if err := r.Remove(context.Background(), path); err == nil {
			t.Errorf("Remove(%q) = nil, want an error", path)
		}
	}
}

// A cgroup still busy when its pod went waits in Pending; a sweep removes it once it is empty,
// and a sweep by a new Pending on the same directory (a restarted berthd) finds it.
func TestPendingSweep(t *testing.T) {
	pod := fmt.Sprintf("/berth-cgroup-test-%d/pending", os.Getpid())
	hierarchies := testCgroup(t, pod)
	kill := sleeper(t, filepath.Join(hierarchies[0], pod))
	dir := t.TempDir()
	p := NewPending(dir)
	if err := p.Add(Cgroupfs, pod); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(Cgroupfs, pod); err != nil { // once only
		t.Fatal(err)
	}
	if n := p.Len(); n != 1 {
		t.Fatalf("Len = %d, want 1", n)
	}
	if left, err := p.Sweep(context.Background()); left != 1 || !errors.Is(err, ErrBusy) {
		t.Fatalf("Sweep of a busy cgroup: %d left, %v; want 1, ErrBusy", left, err)
	}
	kill()
	restarted := NewPending(dir)
	if left, err := restarted.Sweep(context.Background()); left != 0 || err != nil {
		t.Fatalf("Sweep once the cgroup is empty: %d left, %v", left, err)
	}
	if restarted.Len() != 0 {
		t.Errorf("the entry is kept after its cgroup went")
	}
	for _, h := range hierarchies {
		if _, err := os.Stat(filepath.Join(h, pod)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left (%v)", filepath.Join(h, pod), err)
		}
	}
}
