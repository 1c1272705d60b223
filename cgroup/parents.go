package cgroup

import (
	"errors"
	"sync"
)

// Parents counts the pods of each cgroup parent and remembers which parents berth made: a
// parent that was not there when its first pod was created is made by runc for that pod's first
// task, and nobody else removes it. It goes when its last pod does, whichever pod that is. A
// parent that was there (the kubelet's, with the pod's limits on it) is never berth's. What
// berth made is kept in a directory of its state, so that a restarted berthd still knows.
type Parents struct {
	mu      sync.Mutex
	driver  string
	remover *Remover
	pods    map[string]int
	made    ledger
}

// NewParents keeps what berth made in dir.
func NewParents(driver, dir string, remover *Remover) *Parents {
	return &Parents{driver: driver, remover: remover, pods: map[string]int{}, made: ledger{dir}}
}

// Join counts a new pod of parent ("" is none), noting that berth makes the parent when no pod
// has it and it is not there.
func (p *Parents) Join(parent string) error {
	if parent == "" {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pods[parent]++
	if p.pods[parent] == 1 && !p.made.has(p.driver, parent) && !p.remover.Exists(parent) {
		return p.made.add(p.driver, parent)
	}
	return nil
}

// Reset forgets every count, before the pods are loaded (again).
func (p *Parents) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pods = map[string]int{}
}

// Rejoin counts a pod loaded at start-up.
func (p *Parents) Rejoin(parent string) {
	if parent == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pods[parent]++
}

// Leave uncounts a pod of parent and reports whether berth is to remove the parent now: the
// pod was its last and berth made it. The caller removes it.
func (p *Parents) Leave(parent string) bool {
	if parent == "" {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pods[parent] > 1 {
		p.pods[parent]--
		return false
	}
	delete(p.pods, parent)
	if !p.made.has(p.driver, parent) {
		return false
	}
	p.made.remove(p.driver, parent)
	return true
}

// Orphans are the parents berth made that no pod has (their last pod went while berthd was
// down, say): once Rejoin has counted every loaded pod, they are forgotten and returned, for the
// caller to remove.
func (p *Parents) Orphans() ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	entries, err := p.made.list()
	var orphans []string
	var errs []error
	for _, e := range entries {
		if e.driver != p.driver || p.pods[e.path] > 0 {
			continue
		}
		if err := p.made.remove(e.driver, e.path); err != nil {
			errs = append(errs, err)
			continue
		}
		orphans = append(orphans, e.path)
	}
	return orphans, errors.Join(append(errs, err)...)
}
