package checkpoint

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"path"

	criucore "github.com/checkpoint-restore/go-criu/v8/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v8/magic"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
)

// Allowed is what the processes of a restored container may hold: CRIU restores every task's
// credentials, capabilities and seccomp mode from the checkpoint's images, not from the new
// container's spec, so a restore checks them first against the spec.
type Allowed struct {
	// UID and GIDs are the user and the groups the container runs as; a task may hold other ids
	// only if Capabilities has CAP_SETUID (for user ids) or CAP_SETGID (for group ids).
	UID  uint32
	GIDs []uint32
	// Capabilities is the spec's bounding set, a bit per capability number: no task may hold a
	// capability outside it in any of its sets.
	Capabilities uint64
	// NoNewPrivileges requires every task to have no_new_privs set.
	NoNewPrivileges bool
	// Seccomp requires every task to be under a seccomp filter.
	Seccomp bool
}

const (
	capSetgid = 6
	capSetuid = 7
	// maxImage bounds a pstree or core image read from a checkpoint.
	maxImage = 16 << 20
)

// CheckProcesses checks every task of the checkpoint's CRIU images in imagesDir (the process
// tree, pstree.img, and each thread's core-<tid>.img) against a. A task beyond a, or images that
// cannot be read, are an InvalidArgument error naming the task and what it holds.
func CheckProcesses(imagesDir string, a Allowed) error {
	var tree []*pstree.PstreeEntry
	if err := readImage(imagesDir, "pstree.img", "PSTREE", func() proto.Message {
		e := &pstree.PstreeEntry{}
		tree = append(tree, e)
		return e
	}); err != nil {
		return err
	}
	if len(tree) == 0 {
		return fmt.Errorf("checkpoint pstree.img: no process: %w", errdefs.ErrInvalidArgument)
	}
	for _, p := range tree {
		tids := p.GetThreads()
		if len(tids) == 0 {
			tids = []uint32{p.GetPid()}
		}
		for _, tid := range tids {
			var core *criucore.CoreEntry
			name := fmt.Sprintf("core-%d.img", tid)
			if err := readImage(imagesDir, name, "CORE", func() proto.Message {
				core = &criucore.CoreEntry{}
				return core
			}); err != nil {
				return err
			}
			if core == nil {
				return fmt.Errorf("checkpoint %s: empty: %w", name, errdefs.ErrInvalidArgument)
			}
			if err := a.check(core.GetThreadCore()); err != nil {
				return fmt.Errorf("checkpoint task %d (thread %d): %w: %w", p.GetPid(), tid, err, errdefs.ErrInvalidArgument)
			}
		}
	}
	return nil
}

// check reports what of a thread's state goes beyond a.
func (a Allowed) check(tc *criucore.ThreadCoreEntry) error {
	c := tc.GetCreds()
	if c == nil {
		return fmt.Errorf("no credentials recorded")
	}
	if a.Capabilities&(1<<capSetuid) == 0 {
		for _, id := range []uint32{c.GetUid(), c.GetEuid(), c.GetSuid(), c.GetFsuid()} {
			if id != a.UID {
				return fmt.Errorf("runs as user %d, the container as %d", id, a.UID)
			}
		}
	}
	if a.Capabilities&(1<<capSetgid) == 0 {
		for _, id := range append([]uint32{c.GetGid(), c.GetEgid(), c.GetSgid(), c.GetFsgid()}, c.GetGroups()...) {
			if !hasID(a.GIDs, id) {
				return fmt.Errorf("holds group %d, which the container is not given", id)
			}
		}
	}
	for _, set := range []struct {
		name string
		caps []uint32
	}{{"bounding", c.GetCapBnd()}, {"permitted", c.GetCapPrm()}, {"effective", c.GetCapEff()},
		{"inheritable", c.GetCapInh()}, {"ambient", c.GetCapAmb()}} {
		if extra := capMask(set.caps) &^ a.Capabilities; extra != 0 {
			return fmt.Errorf("its %s capabilities hold capability %d, which the container is not given", set.name, bits.TrailingZeros64(extra))
		}
	}
	if a.NoNewPrivileges && c.GetNoNewPrivs() == 0 {
		return fmt.Errorf("no_new_privs is not set, and the container requires it")
	}
	if a.Seccomp && tc.GetSeccompMode() != criucore.SeccompMode_filter {
		return fmt.Errorf("not under a seccomp filter (mode %s), and the container has one", tc.GetSeccompMode())
	}
	return nil
}

// capMask is a capability set as CRIU records it (32-bit words, low first) in one word; a
// capability beyond 63 sets every bit, so that it is never within what is allowed.
func capMask(words []uint32) uint64 {
	var m uint64
	for i, w := range words {
		switch {
		case i < 2:
			m |= uint64(w) << (32 * i)
		case w != 0:
			return ^uint64(0)
		}
	}
	return m
}

func hasID(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// readImage reads the CRIU image name of dir, whose magic must be want, calling next for the
// message each entry is decoded into. The framing is read here, bounded, rather than by crit:
// these images are hostile input and crit trusts their sizes.
func readImage(dir, name, want string, next func() proto.Message) error {
	b, err := ReadFile(dir, path.Join(ImagesDir, name), maxImage)
	if err != nil {
		return err
	}
	bad := func(why string) error {
		return fmt.Errorf("checkpoint image %s: %s: %w", name, why, errdefs.ErrInvalidArgument)
	}
	magics := magic.LoadMagic()
	m, rest, err := word(b)
	if err != nil {
		return bad("no magic")
	}
	if uint64(m) == magics.ByName["IMG_COMMON"] || uint64(m) == magics.ByName["IMG_SERVICE"] {
		if m, rest, err = word(rest); err != nil {
			return bad("no magic")
		}
	}
	if uint64(m) != magics.ByName[want] {
		return bad(fmt.Sprintf("not a %s image", want))
	}
	for len(rest) > 0 {
		size, r, err := word(rest)
		if err != nil || uint64(size) > uint64(len(r)) {
			return bad("truncated entry")
		}
		if err := proto.Unmarshal(r[:size], next()); err != nil {
			return bad(err.Error())
		}
		rest = r[size:]
	}
	return nil
}

func word(b []byte) (uint32, []byte, error) {
	if len(b) < 4 {
		return 0, nil, io.ErrUnexpectedEOF
	}
	return binary.LittleEndian.Uint32(b), b[4:], nil
}
