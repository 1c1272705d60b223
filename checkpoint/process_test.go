package checkpoint

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v8/crit/images/creds"
	criucore "github.com/checkpoint-restore/go-criu/v8/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v8/crit/images/pstree"
	"github.com/checkpoint-restore/go-criu/v8/magic"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
)

// writeImage writes a CRIU image: its magics, then each message framed by its size.
func writeImage(t *testing.T, dir, name, kind string, msgs ...proto.Message) {
	t.Helper()
	m := magic.LoadMagic()
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(m.ByName["IMG_COMMON"]))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.ByName[kind]))
	for _, msg := range msgs {
		p, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	if err := os.WriteFile(filepath.Join(dir, ImagesDir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func u32(v uint32) *uint32 { return &v }

// task is the credentials and seccomp state CRIU records for one thread.
type task struct {
	uid, gid    uint32
	groups      []uint32
	caps        uint64
	noNewPrivs  bool
	seccompMode criucore.SeccompMode
}

func (tk task) core() *criucore.CoreEntry {
	nnp := uint32(0)
	if tk.noNewPrivs {
		nnp = 1
	}
	words := []uint32{uint32(tk.caps), uint32(tk.caps >> 32)}
	return &criucore.CoreEntry{
		Mtype: criucore.CoreEntry_X86_64.Enum(),
		ThreadCore: &criucore.ThreadCoreEntry{
			FutexRla: new(uint64), FutexRlaLen: u32(0),
			SeccompMode: tk.seccompMode.Enum(),
			Creds: &creds.CredsEntry{
				Uid: u32(tk.uid), Euid: u32(tk.uid), Suid: u32(tk.uid), Fsuid: u32(tk.uid),
				Gid: u32(tk.gid), Egid: u32(tk.gid), Sgid: u32(tk.gid), Fsgid: u32(tk.gid),
				Groups: tk.groups, CapBnd: words, CapPrm: words, CapEff: words, CapInh: []uint32{0, 0},
				Secbits: u32(0), NoNewPrivs: u32(nnp),
			},
		},
	}
}

// CheckProcesses refuses a checkpoint whose tasks would be restored with more than the new
// container is given: CRIU restores credentials, capabilities and seccomp from the images, not
// from the spec.
func TestCheckProcesses(t *testing.T) {
	const (
		chown  = 1 << 0
		setgid = 1 << 6
		setuid = 1 << 7
		sysAdm = 1 << 21
	)
	restricted := Allowed{UID: 1000, GIDs: []uint32{3000, 4000}, Capabilities: chown, NoNewPrivileges: true, Seccomp: true}
	ok := task{uid: 1000, gid: 3000, groups: []uint32{3000, 4000}, caps: chown, noNewPrivs: true, seccompMode: criucore.SeccompMode_filter}
	for _, tc := range []struct {
		desc    string
		allowed Allowed
		tasks   []task
		wantErr string
	}{
		{desc: "within what is given", allowed: restricted, tasks: []task{ok, ok}},
		{desc: "root, where the container is a user", allowed: restricted, tasks: []task{ok, {uid: 0, gid: 3000, caps: chown, noNewPrivs: true, seccompMode: criucore.SeccompMode_filter}},
			wantErr: "runs as user 0"},
		{desc: "a group not given", allowed: restricted, tasks: []task{{uid: 1000, gid: 3000, groups: []uint32{0}, caps: chown, noNewPrivs: true, seccompMode: criucore.SeccompMode_filter}},
			wantErr: "holds group 0"},
		{desc: "CAP_SYS_ADMIN not given", allowed: restricted, tasks: []task{{uid: 1000, gid: 3000, caps: chown | sysAdm, noNewPrivs: true, seccompMode: criucore.SeccompMode_filter}},
			wantErr: "capability 21"},
		{desc: "no seccomp filter", allowed: restricted, tasks: []task{{uid: 1000, gid: 3000, caps: chown, noNewPrivs: true}},
			wantErr: "seccomp"},
		{desc: "no_new_privs unset", allowed: restricted, tasks: []task{{uid: 1000, gid: 3000, caps: chown, seccompMode: criucore.SeccompMode_filter}},
			wantErr: "no_new_privs"},
		{desc: "any user with CAP_SETUID and CAP_SETGID", allowed: Allowed{UID: 0, GIDs: []uint32{0}, Capabilities: chown | setuid | setgid},
			tasks: []task{{uid: 33, gid: 33, groups: []uint32{33}, caps: 0}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, ImagesDir), 0o700)
			var tree []proto.Message
			for i, tk := range tc.tasks {
				pid := uint32(i + 1)
				tree = append(tree, &pstree.PstreeEntry{Pid: u32(pid), Ppid: u32(pid - 1), Pgid: u32(1), Sid: u32(1), Threads: []uint32{pid}})
				writeImage(t, dir, fmt.Sprintf("core-%d.img", pid), "CORE", tk.core())
			}
			writeImage(t, dir, "pstree.img", "PSTREE", tree...)
			err := CheckProcesses(dir, tc.allowed)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err = %v, want InvalidArgument with %q", err, tc.wantErr)
			}
		})
	}
}

// Images that are not what they claim, or cut short, are refused rather than trusted.
func TestCheckProcessesBadImages(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		write   func(t *testing.T, dir string)
		wantErr string
	}{
		{desc: "no pstree", write: func(*testing.T, string) {}, wantErr: "has no checkpoint/pstree.img"},
		{desc: "a core image as the pstree", write: func(t *testing.T, dir string) {
			writeImage(t, dir, "pstree.img", "CORE", task{}.core())
		}, wantErr: "not a PSTREE image"},
		{desc: "an entry longer than the file", write: func(t *testing.T, dir string) {
			writeImage(t, dir, "pstree.img", "PSTREE", &pstree.PstreeEntry{Pid: u32(1), Ppid: u32(0), Pgid: u32(1), Sid: u32(1)})
			p := filepath.Join(dir, ImagesDir, "pstree.img")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-2], 0o600)
		}, wantErr: "truncated"},
		{desc: "a task without its core", write: func(t *testing.T, dir string) {
			writeImage(t, dir, "pstree.img", "PSTREE", &pstree.PstreeEntry{Pid: u32(7), Ppid: u32(0), Pgid: u32(7), Sid: u32(7)})
		}, wantErr: "core-7.img"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, ImagesDir), 0o700)
			tc.write(t, dir)
			err := CheckProcesses(dir, Allowed{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err = %v, want InvalidArgument with %q", err, tc.wantErr)
			}
		})
	}
}
