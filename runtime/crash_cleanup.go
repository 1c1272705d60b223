package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// The label of the short-lived leases berth takes around one call (CreateContainer's, which
// keeps containerd's garbage collector off a new snapshot until the container's record holds
// it). A berthd killed inside the call leaves its lease; the next start releases it rather than
// leave containerd to keep the snapshot for the lease's hour.
const (
	leasePurposeLabel    = "berth.io/lease"
	leaseCreateContainer = "create-container"
)

// leaseExpiry bounds a call lease that neither its call nor a restarted berthd releases (a berthd
// that never comes back).
const leaseExpiry = time.Hour

// createContainerLease are the options of CreateContainer's lease.
func createContainerLease() []leases.Opt {
	return []leases.Opt{leases.WithRandomID(), leases.WithExpiration(leaseExpiry), leases.WithLabel(leasePurposeLabel, leaseCreateContainer)}
}

// releaseOrphanedLeases deletes the call leases an earlier berthd left. Load runs it before any
// call is served, so none of this berthd's own is in flight.
func (r *Runtime) releaseOrphanedLeases(ctx context.Context) error {
	ls := r.client.LeasesService()
	orphans, err := ls.List(ctx, fmt.Sprintf("labels.%q==%s", leasePurposeLabel, leaseCreateContainer))
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	var errs []error
	for _, l := range orphans {
		if err := ls.Delete(ctx, l); err != nil {
			errs = append(errs, fmt.Errorf("release lease %s: %w", l.ID, err))
		}
	}
	if len(orphans) > 0 {
		r.log.Info("released the leases a killed berthd left", "leases", len(orphans))
	}
	return errors.Join(errs...)
}

// cleanTempMounts unmounts and removes what berthd's temporary mounts (an image's root file
// system mounted to read its users and volumes) left in their directory, r.tempMountDir, when
// berthd was killed while one was mounted. Nothing outside that directory is touched.
func (r *Runtime) cleanTempMounts() error {
	if r.tempMountDir == "" {
		return nil
	}
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(r.tempMountDir))
	if err != nil {
		return err
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	var errs []error
	for _, m := range mounts {
		if m.Mountpoint == r.tempMountDir {
			continue
		}
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	entries, _ := os.ReadDir(r.tempMountDir)
	for _, e := range entries {
		// Remove, not RemoveAll: a directory still mounted keeps its contents.
		if err := os.Remove(filepath.Join(r.tempMountDir, e.Name())); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	if len(mounts) > 0 {
		r.log.Info("unmounted the temporary mounts a killed berthd left", "mounts", len(mounts))
	}
	return errors.Join(errs...)
}
