package kmsg

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// records gives one kernel log record per Read, as /dev/kmsg does, then EAGAIN.
type records struct{ lines []string }

func (r *records) Read(p []byte) (int, error) {
	if len(r.lines) == 0 {
		return 0, syscall.EAGAIN
	}
	line := r.lines[0]
	r.lines = r.lines[1:]
	if line == "EPIPE" {
		return 0, syscall.EPIPE
	}
	return copy(p, line+"\n"), nil
}

func TestReadOOMKills(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  []OOMKill
	}{{
		name: "systemd scope, v2",
		lines: []string{
			"4,1021,81234567,-;sh invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=1000",
			"6,1040,81234999,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=berth-abc.scope,mems_allowed=0,oom_memcg=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/berth-abc.scope,task_memcg=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/berth-abc.scope,task=stress,pid=4321,uid=0",
			"3,1041,81235000,-;Memory cgroup out of memory: Killed process 4321 (stress) total-vm:2000kB",
		},
		want: []OOMKill{{
			TaskMemcg: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/berth-abc.scope",
			OOMMemcg:  "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/berth-abc.scope",
			Task:      "stress", Pid: "4321",
		}},
	}, {
		name: "pod limit hit, a comma in the task's name, a node list, an overwritten record",
		lines: []string{
			"EPIPE",
			"6,7,9,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=0,2-3,cpuset=/,mems_allowed=0-1,oom_memcg=/kubepods/pod1,task_memcg=/kubepods/pod1/c1,task=a,b,pid=77,uid=1000\n SUBSYSTEM=memory",
		},
		want: []OOMKill{{TaskMemcg: "/kubepods/pod1/c1", OOMMemcg: "/kubepods/pod1", Task: "a,b", Pid: "77"}},
	}, {
		name:  "no kills; a record that only mentions oom-kill",
		lines: []string{"6,1,1,-;audit: oom-kill:task_memcg=/x", "garbage"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadOOMKills(&records{lines: tc.lines})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("kill %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

const allocateEnv = "KMSG_TEST_ALLOCATE"

func TestMain(m *testing.M) {
	if os.Getenv(allocateEnv) != "" {
		// Touch memory until the memory cgroup's limit kills this process.
		var hog [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			hog = append(hog, b)
		}
	}
	os.Exit(m.Run())
}

// TestOOMKilledInFindsARealKill OOM-kills a process in a memory cgroup of its own and finds the
// kill in the kernel's log by the cgroup's name, after the cgroup is gone.
func TestOOMKilledInFindsARealKill(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a memory cgroup and /dev/kmsg")
	}
	b := make([]byte, 8)
	rand.Read(b)
	leaf := "kmsg-test-" + hex.EncodeToString(b)
	dir, limit := filepath.Join("/sys/fs/cgroup", leaf), "memory.max"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		dir, limit = filepath.Join("/sys/fs/cgroup/memory", leaf), "memory.limit_in_bytes"
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("no memory cgroup here: %v", err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	if err := os.WriteFile(filepath.Join(dir, limit), []byte(strconv.Itoa(32<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	if found, err := OOMKilledIn(leaf); err != nil || found {
		t.Fatalf("before the kill: found %v, %v", found, err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), allocateEnv+"=1")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	// On v2 the child starts in the cgroup (clone3's CLONE_INTO_CGROUP). On v1 its PID is written
	// right after it starts: what it touched before is charged to its old cgroup, and it is
	// killed 32 MiB later.
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.controllers")); err == nil {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(f.Fd())
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !cmd.SysProcAttr.UseCgroupFD {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			cmd.Process.Kill()
			t.Fatal(err)
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the memory hog ended with %v, not SIGKILL", err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	found, err := OOMKilledIn(leaf)
	if err != nil || !found {
		t.Fatalf("after the kill, with its cgroup removed: found %v, %v", found, err)
	}
	if found, _ := OOMKilledIn(leaf + "x"); found {
		t.Error("a kill was found for a cgroup that never existed")
	}
}
