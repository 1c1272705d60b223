package runtime

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// Features are what a runtime handler can do beyond the basics, as the kubelet asks in Status.
type Features struct {
	// RecursiveReadOnlyMounts: read-only mounts can be made read-only all the way down (runc's
	// "rro" option, which needs mount_setattr: Linux 5.12).
	RecursiveReadOnlyMounts bool
	// UserNamespaces: pods can have a user namespace of their own. Not yet in berth.
	UserNamespaces bool
}

// HandlerFeatures reports the features of a runtime handler.
func (r *Runtime) HandlerFeatures(string) Features {
	return Features{RecursiveReadOnlyMounts: hasMountSetattr()}
}

// hasMountSetattr probes for mount_setattr(2): on a bad descriptor a kernel that has it answers
// EBADF, one that does not ENOSYS.
var hasMountSetattr = sync.OnceValue(func() bool {
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY})
	return !errors.Is(err, unix.ENOSYS)
})
