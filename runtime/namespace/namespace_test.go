package namespace

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// inNamespace runs fn on a thread that has joined the namespace pinned at path.
func inNamespace(t *testing.T, path string, nstype int, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread is dropped with the goroutine
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, nstype); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

func nsID(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

func TestPinAndUnpin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("pinning namespaces needs root; `make unit` runs as root in CI")
	}
	dir := filepath.Join(t.TempDir(), "pod")
	paths, err := Pin(dir, []Kind{Net, IPC, UTS}, "my-pod")
	if err != nil {
		t.Fatalf("Pin: %v", err)
	}
	for _, k := range []Kind{Net, IPC, UTS} {
		if err := Pinned(paths[k]); err != nil {
			t.Errorf("Pinned(%s): %v", paths[k], err)
		}
		if nsID(t, paths[k]) == nsID(t, "/proc/self/ns/"+string(k)) {
			t.Errorf("%s namespace pinned at %s is the host's", k, paths[k])
		}
	}
	inNamespace(t, paths[UTS], unix.CLONE_NEWUTS, func() {
		var u unix.Utsname
		unix.Uname(&u)
		if h := strings.TrimRight(string(u.Nodename[:]), "\x00"); h != "my-pod" {
			t.Errorf("hostname in the pod = %q, want my-pod", h)
		}
	})
	inNamespace(t, paths[Net], unix.CLONE_NEWNET, func() {
		if err := loopbackUp(); err != nil { // idempotent; also proves lo exists
			t.Error(err)
		}
		ifr, _ := unix.NewIfreq("lo")
		fd, _ := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		defer unix.Close(fd)
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil || ifr.Uint16()&unix.IFF_UP == 0 {
			t.Errorf("lo is not up in the pod's network namespace (%v)", err)
		}
	})
	// Pinning the same directory twice fails without touching the first.
	if _, err := Pin(dir, []Kind{Net}, ""); err == nil {
		t.Error("a second Pin into the same directory succeeded")
	}
	if _, err := os.Stat(paths[Net]); err != nil {
		t.Errorf("failed second Pin removed the first: %v", err)
	}

	if err := Unpin(dir); err != nil {
		t.Fatalf("Unpin: %v", err)
	}
	if err := Pinned(paths[Net]); err == nil {
		t.Errorf("Pinned(%s) after Unpin: nil", paths[Net])
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Unpin", dir)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Errorf("a pin mount under %s is left", dir)
	}
	if err := Unpin(dir); err != nil {
		t.Errorf("second Unpin: %v", err)
	}
}

func TestPinRejectsUnknownKinds(t *testing.T) {
	if _, err := Pin(t.TempDir(), []Kind{"pid"}, ""); err == nil {
		t.Error("Pin of a pid namespace succeeded")
	}
}
