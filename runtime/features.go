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
	return Features{RecursiveReadOnlyMounts: hasMountSetattr(), UserNamespaces: r.usernsSupported()}
}

// usernsState is what probing the node for user-namespaced pods found.
type usernsState struct {
	mu     sync.Mutex
	probed bool
	ok     bool
}

// usernsSupported says whether this node can run pods in user namespaces of their own: user
// namespaces are allowed (user.max_user_namespaces) and containerd's snapshotter can mount layers
// idmapped (containerd checks the kernel's overlayfs for it). The answer is kept once containerd
// has given one; while containerd does not answer, it is no.
func (r *Runtime) usernsSupported() bool {
	r.userns.mu.Lock()
	defer r.userns.mu.Unlock()
	if r.userns.probed {
		return r.userns.ok
	}
	b, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err != nil || strings.TrimSpace(string(b)) == "0" {
		r.userns.probed = true
		r.log.Info("pods cannot have user namespaces of their own: user namespaces are disabled (user.max_user_namespaces)")
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	caps, err := r.client.GetSnapshotterCapabilities(ctx, snapshotter)
	if err != nil {
		return false // containerd is not answering yet: ask again next time
	}
	r.userns.probed, r.userns.ok = true, slices.Contains(caps, "remap-ids")
	if !r.userns.ok {
		r.log.Info("pods cannot have user namespaces of their own: the " + snapshotter + " snapshotter cannot mount layers idmapped on this kernel")
	}
	return r.userns.ok
}

// hasMountSetattr probes for mount_setattr(2): on a bad descriptor a kernel that has it answers
// EBADF, one that does not ENOSYS.
var hasMountSetattr = sync.OnceValue(func() bool {
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	return !errors.Is(err, unix.ENOSYS)
})
