package cgroup

import (
	"context"
	"errors"
	"os"
	"sync"
)

// Pending keeps, one file each in a directory of berth's state, the cgroups whose removal had
// to wait: still busy when their container or pod was removed. A sweep (each minute, and at
// start-up for what a killed or stopped berthd left) removes them.
type Pending struct {
	mu     sync.Mutex
	ledger ledger
}

// NewPending keeps its entries in dir.
func NewPending(dir string) *Pending { return &Pending{ledger: ledger{dir}} }

// Add records that the cgroup cgroupsPath of driver is to be removed.
func (p *Pending) Add(driver, cgroupsPath string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ledger.add(driver, cgroupsPath)
}

// Len is the number of cgroups waiting.
func (p *Pending) Len() int {
	entries, _ := os.ReadDir(p.ledger.dir)
	return len(entries)
}

// Sweep tries each waiting cgroup once more (bounded by ctx), forgets those that are gone, and
// returns how many are left and why.
func (p *Pending) Sweep(ctx context.Context) (left int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	entries, err := p.ledger.list()
	errs := []error{err}
	removers := map[string]*Remover{}
	for _, e := range entries {
		if removers[e.driver] == nil {
			removers[e.driver] = NewRemover(e.driver)
		}
		if err := removers[e.driver].removeOnce(ctx, e.path); err != nil {
			left++
			errs = append(errs, err)
			continue
		}
		p.ledger.remove(e.driver, e.path)
	}
	return left, errors.Join(errs...)
}
