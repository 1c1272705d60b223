package spec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeHost resolves paths as they are and reports one propagation for everything.
type fakeHost struct{ propagation string }

func (f fakeHost) Resolve(p string) (string, error)   { return p, nil }
func (f fakeHost) Propagation(string) (string, error) { return f.propagation, nil }

const passwd = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/bin/false\ndefault-user:x:1000:1000::/home:/bin/sh\n"
const group = "root:x:0:\nwww-data:x:33:\nusers:x:100:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"

var heldCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
	"CAP_AUDIT_WRITE", "CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_PTRACE"} // no CAP_SYS_RESOURCE, as on this machine

func baseInput() Input {
	return Input{
		ID: "c1",
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
			Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
		},
		Sandbox: Sandbox{ID: "pod1", Config: &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/kubepods/pod1"}},
			NetNS: "/run/berth/pods/pod1/ns/net", IPC: "/run/berth/pods/pod1/ns/ipc", UTS: "/run/berth/pods/pod1/ns/uts",
			Dir: "/run/berth/pods/pod1", Shm: "/run/berth/pods/pod1/shm", Hostname: "web", InfraPid: 77},
		Image:    ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"arg0"}, Env: []string{"PATH=/bin", "A=image"}, WorkingDir: "/work"},
		Settings: Settings{CgroupDriver: "cgroupfs", Capabilities: heldCaps, MinOOMScoreAdj: 0, Host: fakeHost{"private"}, Cgroups: fakeCgroups{hugetlb: true}},
		Passwd:   []byte(passwd), Group: []byte(group),
	}
}

func generate(t *testing.T, mutate func(*Input)) (*Result, error) {
	t.Helper()
	in := baseInput()
	if mutate != nil {
		mutate(&in)
	}
	return Generate(in)
}

func mustGenerate(t *testing.T, mutate func(*Input)) *Result {
	t.Helper()
	r, err := generate(t, mutate)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return r
}

func TestProcess(t *testing.T) {
	tests := []struct {
		desc     string
		mutate   func(*Input)
		wantArgs []string
		wantCwd  string
		wantEnv  []string
	}{
		{desc: "image entrypoint and cmd", wantArgs: []string{"/entry", "arg0"}, wantCwd: "/work",
			wantEnv: []string{"PATH=/bin", "A=image", "HOSTNAME=web"}},
		{desc: "command replaces entrypoint and cmd", mutate: func(in *Input) { in.Config.Command = []string{"sh", "-c"} },
			wantArgs: []string{"sh", "-c"}},
		{desc: "command and args", mutate: func(in *Input) { in.Config.Command, in.Config.Args = []string{"sh"}, []string{"-c", "x"} },
			wantArgs: []string{"sh", "-c", "x"}},
		{desc: "args replace cmd only", mutate: func(in *Input) { in.Config.Args = []string{"other"} },
			wantArgs: []string{"/entry", "other"}},
		{desc: "config env overrides image env, in place", mutate: func(in *Input) {
			in.Config.Envs = []*runtimeapi.KeyValue{{Key: "A", Value: []byte("config")}, {Key: "B", Value: []byte("b")}, {Key: "HOSTNAME", Value: []byte("mine")}}
		}, wantEnv: []string{"PATH=/bin", "A=config", "B=b", "HOSTNAME=mine"}},
		{desc: "config working dir", mutate: func(in *Input) { in.Config.WorkingDir = "/srv" }, wantCwd: "/srv"},
		{desc: "no image working dir", mutate: func(in *Input) { in.Image.WorkingDir = "" }, wantCwd: "/"},
		{desc: "default PATH when the image has none", mutate: func(in *Input) { in.Image.Env = nil },
			wantEnv: []string{"HOSTNAME=web", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			p := mustGenerate(t, test.mutate).Spec.Process
			if test.wantArgs != nil && !slices.Equal(p.Args, test.wantArgs) {
				t.Errorf("args = %q, want %q", p.Args, test.wantArgs)
			}
			if test.wantCwd != "" && p.Cwd != test.wantCwd {
				t.Errorf("cwd = %q, want %q", p.Cwd, test.wantCwd)
			}
			if test.wantEnv != nil && !slices.Equal(p.Env, test.wantEnv) {
				t.Errorf("env = %q, want %q", p.Env, test.wantEnv)
			}
		})
	}
	if _, err := generate(t, func(in *Input) { in.Image.Entrypoint, in.Image.Cmd = nil, nil }); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no command at all: %v, want InvalidArgument", err)
	}
}

func TestUser(t *testing.T) {
	i64 := func(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }
	tests := []struct {
		desc     string
		mutate   func(*Input)
		uid, gid uint32
		groups   []uint32
		wantErr  bool
	}{
		{desc: "root by default", uid: 0, gid: 0, groups: []uint32{0}},
		{desc: "run_as_user with a passwd entry", mutate: func(in *Input) { in.Config.Linux.SecurityContext.RunAsUser = i64(33) }, uid: 33, gid: 33, groups: []uint32{33}},
		{desc: "run_as_user without an entry", mutate: func(in *Input) { in.Config.Linux.SecurityContext.RunAsUser = i64(4242) }, uid: 4242, gid: 0, groups: []uint32{0}},
		{desc: "run_as_username", mutate: func(in *Input) { in.Config.Linux.SecurityContext.RunAsUsername = "www-data" }, uid: 33, gid: 33, groups: []uint32{33}},
		{desc: "unknown run_as_username", mutate: func(in *Input) { in.Config.Linux.SecurityContext.RunAsUsername = "nobody-here" }, wantErr: true},
		{desc: "run_as_group", mutate: func(in *Input) {
			in.Config.Linux.SecurityContext.RunAsUser, in.Config.Linux.SecurityContext.RunAsGroup = i64(33), i64(100)
		}, uid: 33, gid: 100, groups: []uint32{100}},
		{desc: "run_as_group without a user", mutate: func(in *Input) { in.Config.Linux.SecurityContext.RunAsGroup = i64(100) }, wantErr: true},
		{desc: "image USER uid", mutate: func(in *Input) { in.Image.User = "1002" }, uid: 1002, gid: 0, groups: []uint32{0}},
		{desc: "image USER name", mutate: func(in *Input) { in.Image.User = "www-data" }, uid: 33, gid: 33, groups: []uint32{33}},
		{desc: "image USER uid:group", mutate: func(in *Input) { in.Image.User = "1003:users" }, uid: 1003, gid: 100, groups: []uint32{100}},
		{desc: "image USER name:gid", mutate: func(in *Input) { in.Image.User = "www-data:100" }, uid: 33, gid: 100, groups: []uint32{100}},
		// A numeric USER that does not fit a uid is refused, never looked up as a name (an
		// image can name a user "4294967296" with uid 0: containerd's GHSA-fqw6-gf59-qr4w).
		{desc: "image USER out of range", mutate: func(in *Input) {
			in.Image.User = "4294967296"
			in.Passwd = append(in.Passwd, "4294967296:x:0:0::/:/bin/sh\n"...)
		}, wantErr: true},
		{desc: "image USER above runc's limit", mutate: func(in *Input) { in.Image.User = "2147483648" }, wantErr: true},
		{desc: "image USER group out of range", mutate: func(in *Input) { in.Image.User = "33:4294967296" }, wantErr: true},
		{desc: "image USER negative", mutate: func(in *Input) { in.Image.User = "-1" }, wantErr: true},
		{desc: "run_as_user above runc's limit", mutate: func(in *Input) { in.Config.Linux.SecurityContext.RunAsUser = i64(1 << 31) }, wantErr: true},
		{desc: "image groups merged with supplemental groups", mutate: func(in *Input) {
			in.Config.Linux.SecurityContext.RunAsUser = i64(1000)
			in.Config.Linux.SecurityContext.SupplementalGroups = []int64{1234}
		}, uid: 1000, gid: 1000, groups: []uint32{1000, 1234, 50000}},
		{desc: "strict policy leaves the image's groups out", mutate: func(in *Input) {
			in.Config.Linux.SecurityContext.RunAsUser = i64(1000)
			in.Config.Linux.SecurityContext.SupplementalGroups = []int64{1234}
			in.Config.Linux.SecurityContext.SupplementalGroupsPolicy = runtimeapi.SupplementalGroupsPolicy_Strict
		}, uid: 1000, gid: 1000, groups: []uint32{1000, 1234}},
		{desc: "negative uid", mutate: func(in *Input) { in.Config.Linux.SecurityContext.RunAsUser = i64(-1) }, wantErr: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			r, err := generate(t, test.mutate)
			if test.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			u := r.Spec.Process.User
			if u.UID != test.uid || u.GID != test.gid || !slices.Equal(u.AdditionalGids, test.groups) {
				t.Errorf("user = %d:%d %v, want %d:%d %v", u.UID, u.GID, u.AdditionalGids, test.uid, test.gid, test.groups)
			}
		})
	}
}

func namespacePath(s *specs.Spec, typ specs.LinuxNamespaceType) (string, bool) {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			return ns.Path, true
		}
	}
	return "", false
}

func TestNamespaces(t *testing.T) {
	mode := func(m runtimeapi.NamespaceMode) func(*Input) {
		return func(in *Input) {
			in.Config.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: m}
			in.Sandbox.InfraPid, in.TargetPid = 77, 88
		}
	}
	tests := []struct {
		desc    string
		mutate  func(*Input)
		pid     string // "" new, "host" none
		wantErr bool
	}{
		{desc: "container PID namespace", mutate: mode(runtimeapi.NamespaceMode_CONTAINER), pid: ""},
		{desc: "pod PID namespace", mutate: mode(runtimeapi.NamespaceMode_POD), pid: "/proc/77/ns/pid"},
		{desc: "node PID namespace", mutate: mode(runtimeapi.NamespaceMode_NODE), pid: "host"},
		{desc: "target PID namespace", mutate: mode(runtimeapi.NamespaceMode_TARGET), pid: "/proc/88/ns/pid"},
		{desc: "pod PID namespace without infra process", mutate: func(in *Input) {
			in.Config.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD}
			in.Sandbox.InfraPid = 0
		}, wantErr: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			r, err := generate(t, test.mutate)
			if test.wantErr {
				if !errdefs.IsFailedPrecondition(err) {
					t.Fatalf("error = %v, want FailedPrecondition", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			path, ok := namespacePath(r.Spec, specs.PIDNamespace)
			switch {
			case test.pid == "host" && ok:
				t.Errorf("has a PID namespace %q, want the node's", path)
			case test.pid != "host" && (!ok || path != test.pid):
				t.Errorf("PID namespace = %q (%v), want %q", path, ok, test.pid)
			}
			if p, _ := namespacePath(r.Spec, specs.NetworkNamespace); p != "/run/berth/pods/pod1/ns/net" {
				t.Errorf("network namespace = %q", p)
			}
		})
	}
	r := mustGenerate(t, func(in *Input) { in.Sandbox.NetNS, in.Sandbox.IPC = "", "" })
	if _, ok := namespacePath(r.Spec, specs.NetworkNamespace); ok {
		t.Error("host-network container has a network namespace")
	}
	if !slices.ContainsFunc(r.Spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev/shm" && m.Source == "/dev/shm" }) {
		t.Error("host-IPC container does not get the node's /dev/shm")
	}
	r = mustGenerate(t, func(*Input) {})
	if !slices.ContainsFunc(r.Spec.Mounts, func(m specs.Mount) bool {
		return m.Destination == "/dev/shm" && m.Source == "/run/berth/pods/pod1/shm" && m.Type == "bind"
	}) {
		t.Error("container does not share its pod's /dev/shm")
	}
}

func mountAt(s *specs.Spec, dest string) (specs.Mount, bool) {
	for _, m := range s.Mounts {
		if m.Destination == dest {
			return m, true
		}
	}
	return specs.Mount{}, false
}

func TestMounts(t *testing.T) {
	withMount := func(m *runtimeapi.Mount, propagation string) func(*Input) {
		return func(in *Input) {
			in.Config.Mounts = []*runtimeapi.Mount{m}
			in.Settings.Host = fakeHost{propagation}
		}
	}
	tests := []struct {
		desc     string
		mutate   func(*Input)
		dest     string
		wantOpts []string
		rootfs   string
		source   string // checked when set
		wantErr  bool
	}{
		{desc: "pod files", dest: "/etc/resolv.conf", wantOpts: []string{"rbind", "rprivate", "rw"}},
		{desc: "pod files read-only with a read-only rootfs", mutate: func(in *Input) { in.Config.Linux.SecurityContext.ReadonlyRootfs = true },
			dest: "/etc/hosts", wantOpts: []string{"rbind", "rprivate", "ro"}},
		{desc: "config mount replaces a pod file", mutate: withMount(&runtimeapi.Mount{HostPath: "/my/hosts", ContainerPath: "/etc/hosts"}, "private"),
			dest: "/etc/hosts", wantOpts: []string{"rbind", "rprivate", "rw"}},
		{desc: "read-only", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "/data", Readonly: true}, "private"),
			dest: "/data", wantOpts: []string{"rbind", "rprivate", "ro"}},
		{desc: "recursive read-only", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "/data", Readonly: true, RecursiveReadOnly: true}, "private"),
			dest: "/data", wantOpts: []string{"rbind", "rprivate", "rro"}},
		{desc: "recursive read-only but writable", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "/data", RecursiveReadOnly: true}, "private"), wantErr: true},
		{desc: "recursive read-only with propagation", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "/data", Readonly: true, RecursiveReadOnly: true,
			Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, "shared"), wantErr: true},
		{desc: "host to container on a shared mount", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "/data",
			Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, "shared"), dest: "/data", wantOpts: []string{"rbind", "rslave", "rw"}, rootfs: "rslave"},
		{desc: "host to container on a private mount", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "/data",
			Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, "private"), wantErr: true},
		{desc: "bidirectional on a shared mount", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "/data",
			Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}, "shared"), dest: "/data", wantOpts: []string{"rbind", "rshared", "rw"}, rootfs: "rshared"},
		{desc: "bidirectional on a slave mount", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "/data",
			Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}, "slave"), wantErr: true},
		{desc: "relative container path", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "data"}, "private"), wantErr: true},
		{desc: "no host path", mutate: withMount(&runtimeapi.Mount{ContainerPath: "/data"}, "private"), wantErr: true},
		{desc: "image volume", mutate: func(in *Input) {
			withMount(&runtimeapi.Mount{ContainerPath: "/data", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "sha256:abc"},
				UidMappings: []*runtimeapi.IDMapping{{HostId: 1000, Length: 65536}}}, "private")(in)
			in.ImageVolumes = map[int]string{0: "/run/berth/pods/pod1/image-volumes/abc"}
		}, dest: "/data", wantOpts: []string{"rbind", "rprivate", "ro"}, source: "/run/berth/pods/pod1/image-volumes/abc"},
		{desc: "bind mount options", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "/data", MountOptions: []string{"noexec", "nosuid", "noexec"}}, "private"),
			dest: "/data", wantOpts: []string{"rbind", "rprivate", "rw", "noexec", "nosuid"}},
		{desc: "a mount option that is not a bind mount's", mutate: withMount(&runtimeapi.Mount{HostPath: "/data", ContainerPath: "/data", MountOptions: []string{"remount"}}, "private"), wantErr: true},
		{desc: "image volume the runtime did not mount", mutate: withMount(&runtimeapi.Mount{ContainerPath: "/data", Readonly: true,
			Image: &runtimeapi.ImageSpec{Image: "sha256:abc"}}, "private"), wantErr: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			r, err := generate(t, test.mutate)
			if test.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("error = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m, ok := mountAt(r.Spec, test.dest)
			if !ok || !slices.Equal(m.Options, test.wantOpts) {
				t.Errorf("mount at %s = %+v (%v), want options %v", test.dest, m, ok, test.wantOpts)
			}
			if test.source != "" && (m.Source != test.source || len(m.UIDMappings) > 0) {
				t.Errorf("mount at %s = %+v, want source %s and no id mappings (the image is idmapped by the snapshotter)", test.dest, m, test.source)
			}
			if r.Spec.Linux.RootfsPropagation != test.rootfs {
				t.Errorf("rootfs propagation = %q, want %q", r.Spec.Linux.RootfsPropagation, test.rootfs)
			}
		})
	}
}

func TestCapabilitiesAndPrivileged(t *testing.T) {
	caps := func(add, drop []string) func(*Input) {
		return func(in *Input) {
			in.Config.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: add, DropCapabilities: drop}
		}
	}
	tests := []struct {
		desc     string
		mutate   func(*Input)
		has, not []string
		count    int
	}{
		{desc: "defaults", has: []string{"CAP_CHOWN", "CAP_KILL"}, not: []string{"CAP_SYS_ADMIN"}, count: len(defaultCapabilities)},
		{desc: "add one", mutate: caps([]string{"SYS_ADMIN"}, nil), has: []string{"CAP_SYS_ADMIN"}, count: len(defaultCapabilities) + 1},
		{desc: "drop one", mutate: caps(nil, []string{"CHOWN"}), not: []string{"CAP_CHOWN"}, count: len(defaultCapabilities) - 1},
		{desc: "add ALL means what berth holds", mutate: caps([]string{"ALL"}, nil), has: []string{"CAP_SYS_PTRACE"}, not: []string{"CAP_SYS_RESOURCE"}, count: len(heldCaps)},
		{desc: "drop ALL then add one", mutate: caps([]string{"NET_ADMIN"}, []string{"ALL"}), has: []string{"CAP_NET_ADMIN"}, count: 1},
		{desc: "a capability berth lacks is left out", mutate: caps([]string{"SYS_RESOURCE"}, nil), not: []string{"CAP_SYS_RESOURCE"}, count: len(defaultCapabilities)},
		{desc: "privileged gets everything held", mutate: func(in *Input) {
			in.Config.Linux.SecurityContext.Privileged = true
			in.Sandbox.Config.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Privileged: true}
		}, count: len(heldCaps)},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			c := mustGenerate(t, test.mutate).Spec.Process.Capabilities
			for _, h := range test.has {
				if !slices.Contains(c.Effective, h) {
					t.Errorf("lacks %s: %v", h, c.Effective)
				}
			}
			for _, n := range test.not {
				if slices.Contains(c.Bounding, n) {
					t.Errorf("has %s: %v", n, c.Bounding)
				}
			}
			if len(c.Bounding) != test.count {
				t.Errorf("%d capabilities, want %d: %v", len(c.Bounding), test.count, c.Bounding)
			}
		})
	}
	r := mustGenerate(t, func(in *Input) {
		in.Config.Linux.SecurityContext.Privileged = true
		in.Config.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		in.Sandbox.Config.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{Privileged: true}
	})
	if len(r.Spec.Linux.MaskedPaths) != 0 || r.Spec.Linux.Seccomp != nil {
		t.Errorf("privileged container has masked paths %v or seccomp", r.Spec.Linux.MaskedPaths)
	}
	if m, _ := mountAt(r.Spec, "/sys"); slices.Contains(m.Options, "ro") {
		t.Error("privileged container has a read-only /sys")
	}
	if _, err := generate(t, func(in *Input) { in.Config.Linux.SecurityContext.Privileged = true }); !errdefs.IsInvalidArgument(err) {
		t.Errorf("privileged container in an unprivileged pod: %v, want InvalidArgument", err)
	}
}

func TestSecurityProfilesAndPaths(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "block-hostname.json")
	os.WriteFile(profile, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	sc := func(f func(*runtimeapi.LinuxContainerSecurityContext)) func(*Input) {
		return func(in *Input) { f(in.Config.Linux.SecurityContext); in.Settings.SeccompProfileRoot = dir }
	}
	tests := []struct {
		desc    string
		mutate  func(*Input)
		check   func(*testing.T, *specs.Spec)
		wantErr bool
	}{
		{desc: "unconfined by default", check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil {
				t.Error("seccomp set")
			}
		}},
		{desc: "runtime default", mutate: sc(func(c *runtimeapi.LinuxContainerSecurityContext) {
			c.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		}), check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
				t.Errorf("seccomp = %v, want the default profile", s.Linux.Seccomp)
			}
		}},
		{desc: "legacy runtime/default", mutate: sc(func(c *runtimeapi.LinuxContainerSecurityContext) { c.SeccompProfilePath = "runtime/default" }),
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Seccomp == nil {
					t.Error("no seccomp")
				}
			}},
		{desc: "localhost, relative", mutate: sc(func(c *runtimeapi.LinuxContainerSecurityContext) {
			c.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "block-hostname.json"}
		}), check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp == nil || s.Linux.Seccomp.Syscalls[0].Names[0] != "sethostname" {
				t.Errorf("seccomp = %v", s.Linux.Seccomp)
			}
		}},
		{desc: "localhost, missing", mutate: sc(func(c *runtimeapi.LinuxContainerSecurityContext) { c.SeccompProfilePath = "localhost/nope.json" }), wantErr: true},
		{desc: "apparmor profile without AppArmor", mutate: sc(func(c *runtimeapi.LinuxContainerSecurityContext) {
			c.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "p"}
		}), wantErr: true},
		{desc: "apparmor runtime default without AppArmor is fine", mutate: sc(func(c *runtimeapi.LinuxContainerSecurityContext) {
			c.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		})},
		{desc: "masked and read-only path overrides", mutate: sc(func(c *runtimeapi.LinuxContainerSecurityContext) {
			c.MaskedPaths, c.ReadonlyPaths = []string{"/bin/ls"}, []string{"/etc"}
		}), check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Linux.MaskedPaths, []string{"/bin/ls"}) || !slices.Equal(s.Linux.ReadonlyPaths, []string{"/etc"}) {
				t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
		}},
		// The kubelet sends its defaults for procMount Default and empty lists for Unmasked:
		// an empty list means none, as in containerd.
		{desc: "no masked or read-only paths unless asked", check: func(t *testing.T, s *specs.Spec) {
			if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
				t.Errorf("masked %v, read-only %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
		}},
		{desc: "masked and read-only paths as asked", mutate: sc(func(c *runtimeapi.LinuxContainerSecurityContext) {
			c.MaskedPaths, c.ReadonlyPaths = []string{"/proc/kcore"}, []string{"/proc/sys"}
		}), check: func(t *testing.T, s *specs.Spec) {
			if !slices.Equal(s.Linux.MaskedPaths, []string{"/proc/kcore"}) || !slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/sys"}) {
				t.Errorf("masked %v, read-only %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
		}},
		{desc: "no_new_privs and read-only rootfs", mutate: sc(func(c *runtimeapi.LinuxContainerSecurityContext) { c.NoNewPrivs, c.ReadonlyRootfs = true, true }),
			check: func(t *testing.T, s *specs.Spec) {
				if !s.Process.NoNewPrivileges || !s.Root.Readonly {
					t.Error("no_new_privs or readonly rootfs not set")
				}
			}},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			r, err := generate(t, test.mutate)
			if test.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("error = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if test.check != nil {
				test.check(t, r.Spec)
			}
		})
	}
}

func TestResourcesAndCgroups(t *testing.T) {
	r := mustGenerate(t, func(in *Input) {
		in.Settings.MinOOMScoreAdj = -10
		in.Config.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000,
			MemoryLimitInBytes: 64 << 20, OomScoreAdj: -999, CpusetCpus: "0",
			HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}}}
	})
	res := r.Spec.Linux.Resources
	if *res.CPU.Shares != 512 || *res.CPU.Quota != 50000 || *res.CPU.Period != 100000 || res.CPU.Cpus != "0" || *res.Memory.Limit != 64<<20 {
		t.Errorf("resources = %+v %+v", res.CPU, res.Memory)
	}
	if len(res.HugepageLimits) != 1 {
		t.Errorf("hugepages = %v", res.HugepageLimits)
	}
	if *r.Spec.Process.OOMScoreAdj != -10 {
		t.Errorf("oom_score_adj = %d, want it raised to berthd's own -10", *r.Spec.Process.OOMScoreAdj)
	}
	if r.Spec.Linux.CgroupsPath != "/kubepods/pod1/c1" {
		t.Errorf("cgroupfs cgroups path = %q", r.Spec.Linux.CgroupsPath)
	}
	for parent, want := range map[string]string{
		"kubepods-pod1.slice": "kubepods-pod1.slice:berth:c1",
		// What the kubelet sends with the systemd driver: the pod slice's full path. runc
		// takes only a slice name ("invalid slice name", found by make vm-test).
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice": "kubepods-burstable-pod1.slice:berth:c1",
		"": "system.slice:berth:c1",
	} {
		if got := CgroupsPath(parent, "c1", "systemd"); got != want {
			t.Errorf("systemd cgroups path under %q = %q, want %q", parent, got, want)
		}
	}
	if _, err := generate(t, func(in *Input) {
		in.Config.Linux.Resources = &runtimeapi.LinuxContainerResources{Unified: map[string]string{"memory.max": "1"}}
	}); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "unified") {
		t.Errorf("unified on cgroup v1: %v, want InvalidArgument", err)
	}
	if r.Spec.Annotations[GroupAnnotation] != "pod1" {
		t.Errorf("shim group annotation = %q", r.Spec.Annotations[GroupAnnotation])
	}
}

// Only the annotations the handler's allowlist passed reach the spec, and none of them over
// berth's own: a config's annotations runc acts on (org.systemd.property.*, org.criu.config)
// stay out (CRI-O's GHSA-2cgq-h8xw-2v5j).
func TestAnnotationsReachTheSpecOnlyThroughTheAllowlist(t *testing.T) {
	hostile := map[string]string{
		"org.systemd.property.CPUQuota": "1000%", "org.criu.config": "/etc/shadow", "bundle": "/",
		"io.kubernetes.cri.sandbox-id": "another-pod", GroupAnnotation: "another-pod",
	}
	r := mustGenerate(t, func(in *Input) {
		in.Config.Annotations = hostile
		in.Sandbox.Config.Annotations = hostile
	})
	for k := range hostile {
		if v, ok := r.Spec.Annotations[k]; ok && v == hostile[k] {
			t.Errorf("the config's %s=%q reached the spec", k, v)
		}
	}
	r = mustGenerate(t, func(in *Input) {
		in.Annotations = map[string]string{"example.com/mode": "fast", GroupAnnotation: "another-pod"}
	})
	if r.Spec.Annotations["example.com/mode"] != "fast" {
		t.Errorf("an allowed annotation is not in the spec: %v", r.Spec.Annotations)
	}
	if r.Spec.Annotations[GroupAnnotation] != "pod1" {
		t.Errorf("an allowed annotation overrode berth's shim group: %q", r.Spec.Annotations[GroupAnnotation])
	}
}
