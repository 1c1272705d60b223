package cgroup

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Pending keeps, one file each in a directory of berth's state, the cgroups whose removal had
// to wait: still busy when their container or pod was removed. A sweep (each minute, and at
// start-up for what a killed or stopped berthd left) removes them.
type Pending struct {
	dir string
	mu  sync.Mutex
}

// NewPending keeps its entries in dir.
func NewPending(dir string) *Pending { return &Pending{dir: dir} }

// Add records that the cgroup cgroupsPath of driver is to be removed.
func (p *Pending) Add(driver, cgroupsPath string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	name := fmt.Sprintf("%x", sha256.Sum256([]byte(driver+"\n"+cgroupsPath)))
	return os.WriteFile(filepath.Join(p.dir, name), []byte(driver+"\n"+cgroupsPath+"\n"), 0o600)
}

// Len is the number of cgroups waiting.
func (p *Pending) Len() int {
	entries, _ := os.ReadDir(p.dir)
	return len(entries)
}

// Sweep tries each waiting cgroup once more (Remove, bounded by ctx), forgets those that are
// gone, and returns how many are left and why.
func (p *Pending) Sweep(ctx context.Context) (left int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	entries, err := os.ReadDir(p.dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	removers := map[string]*Remover{}
	var errs []error
	for _, e := range entries {
		file := filepath.Join(p.dir, e.Name())
		b, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		driver, path, ok := strings.Cut(strings.TrimSpace(string(b)), "\n")
		if !ok || (driver != Cgroupfs && driver != Systemd) {
			errs = append(errs, fmt.Errorf("pending cgroup %s: not an entry: %q", file, b))
			os.Remove(file)
			continue
		}
		if removers[driver] == nil {
			removers[driver] = NewRemover(driver)
		}
		if err := removers[driver].removeOnce(ctx, path); err != nil {
			left++
			errs = append(errs, err)
			continue
		}
		os.Remove(file)
	}
	return left, errors.Join(errs...)
}
