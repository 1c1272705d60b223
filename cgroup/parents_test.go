package cgroup

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fakeRemover is a Remover over plain directories standing in for one hierarchy.
func fakeRemover(t *testing.T) (*Remover, string) {
	root := t.TempDir()
	return &Remover{driver: Cgroupfs, hierarchies: func() ([]string, error) { return []string{root}, nil }}, root
}

// A parent berth made goes with its last pod, whichever pod came first; one that was there
// (the kubelet's) never does; a restarted berthd still knows which are berth's, and those whose
// last pod went while it was down are orphans.
func TestParents(t *testing.T) {
	remover, root := fakeRemover(t)
	dir := t.TempDir()
	p := NewParents(Cgroupfs, dir, remover)
	if err := os.MkdirAll(filepath.Join(root, "kubepods/pod-k"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, parent := range []string{"/shared", "/shared", "/kubepods/pod-k", "/alone", ""} {
		if err := p.Join(parent); err != nil {
			t.Fatal(err)
		}
	}
	// runc makes the parents with the pods' first tasks.
	os.MkdirAll(filepath.Join(root, "shared"), 0o755)
	if p.Leave("/shared") {
		t.Error("the parent of two pods is to go with the first")
	}
	if !p.Leave("/shared") {
		t.Error("the parent berth made is not to go with its last pod")
	}
	if p.Leave("/kubepods/pod-k") {
		t.Error("the kubelet's parent is to go with its pod")
	}
	if p.Leave("") {
		t.Error("no parent is to go")
	}

	// berthd restarts with the /alone pod still there, then again after it was removed behind
	// its back (say, its last removal was cut off).
	restarted := NewParents(Cgroupfs, dir, remover)
	restarted.Rejoin("/alone")
	if orphans, err := restarted.Orphans(); err != nil || len(orphans) != 0 {
		t.Errorf("orphans with the pod there: %v, %v", orphans, err)
	}
	again := NewParents(Cgroupfs, dir, remover)
	if orphans, err := again.Orphans(); err != nil || !slices.Equal(orphans, []string{"/alone"}) {
		t.Errorf("orphans once the pod is gone: %v, %v; want [/alone]", orphans, err)
	}
	if orphans, _ := again.Orphans(); len(orphans) != 0 {
		t.Errorf("an orphan is returned twice: %v", orphans)
	}
}
