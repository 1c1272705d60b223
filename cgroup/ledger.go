package cgroup

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ledger keeps a set of cgroups, one small file each in a directory of berth's state, so that it
// outlives berthd (and goes with a reboot, as the cgroups do).
type ledger struct{ dir string }

func (l ledger) file(driver, path string) string {
	return filepath.Join(l.dir, fmt.Sprintf("%x", sha256.Sum256([]byte(driver+"\n"+path))))
}

func (l ledger) add(driver, path string) error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(l.file(driver, path), []byte(driver+"\n"+path+"\n"), 0o600)
}

func (l ledger) has(driver, path string) bool {
	_, err := os.Stat(l.file(driver, path))
	return err == nil
}

func (l ledger) remove(driver, path string) error {
	if err := os.Remove(l.file(driver, path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// entry is one cgroup of a ledger.
type entry struct{ driver, path string }

// list reads the ledger; entries that cannot be read are returned as errors and dropped.
func (l ledger) list() ([]entry, error) {
	files, err := os.ReadDir(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []entry
	var errs []error
	for _, f := range files {
		name := filepath.Join(l.dir, f.Name())
		b, err := os.ReadFile(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		driver, path, ok := strings.Cut(strings.TrimSpace(string(b)), "\n")
		if !ok || (driver != Cgroupfs && driver != Systemd) {
			errs = append(errs, fmt.Errorf("cgroup ledger %s: not an entry: %q", name, b))
			os.Remove(name)
			continue
		}
		out = append(out, entry{driver, path})
	}
	return out, errors.Join(errs...)
}
