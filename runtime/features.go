package runtime

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Features are what a runtime handler can do beyond the basics, as the kubelet asks in Status.
type Features struct {
	// RecursiveReadOnlyMounts: read-only mounts can be made read-only all the way down (runc's
	// "rro" option, which needs mount_setattr: Linux 5.12).
	RecursiveReadOnlyMounts bool
	// UserNamespaces: pods can have a user namespace of their own (userns_options mode POD):
	// the node lets berthd make user namespaces, and containerd's overlayfs snapshotter can
	// mount image layers idmapped on this kernel.
	UserNamespaces bool
}

// HandlerFeatures reports the features of a runtime handler.
func (r *Runtime) HandlerFeatures(string) Features {
	return Features{RecursiveReadOnlyMounts: hasMountSetattr(), UserNamespaces: r.userns.Load()}
}

// probeUserns finds out whether this node can run pods in user namespaces of their own: user
// namespaces are allowed (user.max_user_namespaces) and the snapshotter says it can idmap layers
// (containerd checks the kernel's overlayfs for it).
func (r *Runtime) probeUserns(ctx context.Context) (bool, string) {
	b, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err != nil || strings.TrimSpace(string(b)) == "0" {
		return false, "user namespaces are disabled (user.max_user_namespaces)"
	}
	caps, err := r.client.GetSnapshotterCapabilities(ctx, snapshotter)
	if err != nil {
		return false, "cannot ask the snapshotter: " + err.Error()
	}
	if !slices.Contains(caps, "remap-ids") {
		return false, "the " + snapshotter + " snapshotter cannot mount layers idmapped on this kernel"
	}
	return true, ""
}

// hasMountSetattr probes for mount_setattr(2): on a bad descriptor a kernel that has it answers
// EBADF, one that does not ENOSYS.
var hasMountSetattr = sync.OnceValue(func() bool {
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	return !errors.Is(err, unix.ENOSYS)
})
