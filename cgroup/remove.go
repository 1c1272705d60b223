package cgroup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// ErrBusy says that a cgroup still holds processes, so it cannot be removed yet.
var ErrBusy = errors.New("cgroup still holds processes")

// Remover removes the cgroups of one driver from every hierarchy of the node.
type Remover struct {
	driver string
	// hierarchies lists the mount points of the node's cgroup hierarchies (v1 ones and the
	// v2 one alike).
	hierarchies func() ([]string, error)
	// units stops systemd units (systemd driver); nil with cgroupfs.
	units unitStopper
}

// unitStopper stops a systemd unit and waits until it is gone; a unit that is not there is
// stopped already.
type unitStopper interface {
	StopUnit(ctx context.Context, name string) error
}

// NewRemover returns the remover of driver (Cgroupfs or Systemd) for this node.
func NewRemover(driver string) *Remover {
	r := &Remover{driver: driver, hierarchies: nodeHierarchies}
	if driver == Systemd {
		r.units = &systemdUnits{}
	}
	return r
}

// nodeHierarchies reads the cgroup mounts of this mount namespace.
func nodeHierarchies() ([]string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup mounts: %w", err)
	}
	var dirs []string
	for _, m := range mounts {
		dirs = append(dirs, m.Mountpoint)
	}
	return dirs, nil
}

// Exists reports whether the cgroup cgroupsPath names is in any hierarchy.
func (r *Remover) Exists(cgroupsPath string) bool {
	hierarchies, _ := r.hierarchies()
	for _, h := range hierarchies {
		if _, err := os.Stat(filepath.Join(h, HostPath(r.driver, cgroupsPath))); err == nil {
			return true
		}
	}
	return false
}

// Remove removes the cgroup cgroupsPath names (an OCI linux.cgroupsPath of the driver), and
// the empty cgroups below it, from every hierarchy: with systemd it stops the scope or slice
// first. While processes still leave the cgroup (a killed task's are reaped a moment after its
// shim reports it) it tries again until ctx ends, then returns an error wrapping ErrBusy. A
// cgroup that is not there is removed already. A slice is only stopped once nothing is in it:
// stopping it would kill what is.
func (r *Remover) Remove(ctx context.Context, cgroupsPath string) error {
	delay := 20 * time.Millisecond
	for {
		err := r.removeOnce(ctx, cgroupsPath)
		if err == nil || !errors.Is(err, ErrBusy) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
}

func (r *Remover) removeOnce(ctx context.Context, cgroupsPath string) error {
	hierarchies, err := r.hierarchies()
	if err != nil {
		return err
	}
	dir := HostPath(r.driver, cgroupsPath)
	if dir == "/" {
		return fmt.Errorf("cgroup path %q names the root cgroup", cgroupsPath)
	}
	if unit := unitName(cgroupsPath); r.units != nil && unit != "" {
		if strings.HasSuffix(unit, ".slice") {
			for _, h := range hierarchies {
				if populated(filepath.Join(h, dir)) {
					return fmt.Errorf("%s: %w", filepath.Join(h, dir), ErrBusy)
				}
			}
		}
		if err := r.units.StopUnit(ctx, unit); err != nil {
			return fmt.Errorf("stop %s: %w", unit, err)
		}
	}
	var errs []error
	for _, h := range hierarchies {
		if err := removeTree(filepath.Join(h, dir)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeTree removes the cgroup dir and the cgroups below it, the deepest first. rmdir removes
// only a cgroup without processes or children (EBUSY otherwise), so nothing alive is touched.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	switch err := unix.Rmdir(dir); {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%s: %w", dir, ErrBusy)
	default:
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
}

// populated reports whether a process is in the cgroup dir or below it: cgroup.events says so
// on v2; on v1 every cgroup.procs of the tree is read.
func populated(dir string) bool {
	if b, err := os.ReadFile(filepath.Join(dir, "cgroup.events")); err == nil {
		return strings.Contains(string(b), "populated 1")
	}
	found := false
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || found {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == "cgroup.procs" {
			if b, _ := os.ReadFile(path); len(strings.TrimSpace(string(b))) > 0 {
				found = true
			}
		}
		return nil
	})
	return found
}
