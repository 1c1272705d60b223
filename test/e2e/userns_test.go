package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// usernsHostID is where the test pods' ids start on the node: outside any id a user of this
// machine has, as the kubelet picks them (a multiple of 65536).
const usernsHostID = 65536 * 40

func usernsOptions(hostID uint32) *runtimeapi.UserNamespace {
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: hostID, Length: 65536}}
	return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}
}

// TestUserNamespacedPod runs a pod with a user namespace of its own (the kubelet's hostUsers:
// false): its root is an unprivileged id of the node, its image's files are its root's (idmapped
// layers, image volumes too), a volume is idmapped only when the kubelet asks, and the node's
// files stay the node's.
func TestUserNamespacedPod(t *testing.T) {
	_, hosts := serveImages(t, nil)
	d := startDaemon(t, "--registry-config-dir", hosts, "--cni-conf-dir", podNetwork(t))
	imageID := mustPull(t, d.Image, busyboxRef)
	cfg := podConfig("userns")
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(usernsHostID)
	env := runPodEnv(t, d, cfg)

	plain := t.TempDir() // a volume as the node has it: root's, world-writable
	os.Chmod(plain, 0o777)
	secret := filepath.Join(plain, "node-secret")
	if err := os.WriteFile(secret, []byte("the node's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mapped := t.TempDir() // a volume the kubelet asks to be idmapped
	mapping := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: usernsHostID, Length: 65536}}
	id := env.run(t, "app", func(c *runtimeapi.ContainerConfig) {
		// NET_ADMIN is the pod's user namespace's, which owns the pod's network namespace.
		c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}}
		c.Mounts = []*runtimeapi.Mount{
			{HostPath: plain, ContainerPath: "/plain"},
			{HostPath: mapped, ContainerPath: "/mapped", UidMappings: mapping, GidMappings: mapping},
			{ContainerPath: "/image", Readonly: true, Image: &runtimeapi.ImageSpec{Image: imageID}, UidMappings: mapping, GidMappings: mapping},
		}
	})

	if got := strings.Fields(env.exec(t, id, "cat", "/proc/self/uid_map")); strings.Join(got, " ") != "0 2621440 65536" {
		t.Errorf("uid_map inside = %v, want 0 %d 65536", got, usernsHostID)
	}
	if got := strings.TrimSpace(env.exec(t, id, "id", "-u")); got != "0" {
		t.Errorf("id -u inside = %s, want 0", got)
	}
	// The image's files are root's inside: the layers are mounted idmapped.
	if got := strings.TrimSpace(env.exec(t, id, "stat", "-c", "%u:%g", "/bin/busybox")); got != "0:0" {
		t.Errorf("/bin/busybox inside is owned by %s, want 0:0 (idmapped layers)", got)
	}
	// ... and so are an image volume's.
	if got := strings.TrimSpace(env.exec(t, id, "stat", "-c", "%u:%g", "/image/bin/busybox")); got != "0:0" {
		t.Errorf("/image/bin/busybox (an image volume) inside is owned by %s, want 0:0 (idmapped)", got)
	}
	// What the pod's root writes in a plain volume is the mapped id's on the node.
	env.exec(t, id, "sh", "-c", "echo hi > /plain/from-pod && echo hi > /tmp/in-rootfs")
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(plain, "from-pod"), &st); err != nil || st.Uid != usernsHostID || st.Gid != usernsHostID {
		t.Errorf("a file written by the pod's root: owner %d:%d (%v), want %d", st.Uid, st.Gid, err, usernsHostID)
	}
	// ... and root's in an idmapped one.
	env.exec(t, id, "sh", "-c", "echo hi > /mapped/from-pod")
	if err := syscall.Stat(filepath.Join(mapped, "from-pod"), &st); err != nil || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("a file written by the pod's root in an idmapped volume: owner %d:%d (%v), want 0:0", st.Uid, st.Gid, err)
	}
	// The node's root's files are nobody's inside, and closed to the pod's root.
	resp, err := d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"cat", "/plain/node-secret"}, Timeout: 10})
	if err != nil || resp.ExitCode == 0 || !strings.Contains(string(resp.Stderr), "Permission denied") {
		t.Errorf("the pod's root reading the node's 0600 file: %v, %s%s", err, resp.GetStdout(), resp.GetStderr())
	}
	if got := strings.TrimSpace(env.exec(t, id, "stat", "-c", "%u", "/plain/node-secret")); got != "65534" {
		t.Errorf("the node's root's file inside is owned by %s, want 65534 (unmapped)", got)
	}
	// The pod's network namespace is its own user namespace's: its root can configure it.
	if out, err := d.Runtime.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"ip", "link", "set", "lo", "mtu", "1500"}, Timeout: 10}); err != nil || out.ExitCode != 0 {
		t.Errorf("the pod's root cannot configure the pod's network: %v %s", err, out.GetStderr())
	}
	// The node's own files kept their owners.
	if err := syscall.Stat(secret, &st); err != nil || st.Uid != 0 {
		t.Errorf("the node's file changed owner: %d (%v)", st.Uid, err)
	}
	// The pod's /etc/hosts is its root's (idmapped), from under berth's root: idmapped mounts
	// of tmpfs (berth's state) need Linux 6.3. Removing the pod removes them.
	if got := strings.TrimSpace(env.exec(t, id, "stat", "-c", "%u:%g", "/etc/hosts")); got != "0:0" {
		t.Errorf("/etc/hosts inside is owned by %s, want 0:0 (idmapped)", got)
	}
	files := filepath.Join(d.Root, "pods", env.pod)
	if _, err := os.Stat(filepath.Join(files, "hosts")); err != nil {
		t.Errorf("the user-namespaced pod's hosts file is not under berth's root: %v", err)
	}
	if _, err := d.Runtime.StopPodSandbox(ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: env.pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Runtime.RemovePodSandbox(ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: env.pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(files); !os.IsNotExist(err) {
		t.Errorf("%s is left after the pod was removed: %v", files, err)
	}
}

// TestUserNamespaceSharedPID: the infra process of a pod that shares its PID namespace joins
// the pod's user namespace too.
func TestUserNamespaceSharedPID(t *testing.T) {
	d := busyboxDaemon(t)
	cfg := podConfig("userns-pid")
	cfg.LogDirectory = t.TempDir()
	cfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD, UsernsOptions: usernsOptions(usernsHostID + 65536)}
	env := runPodEnv(t, d, cfg)
	id := env.run(t, "app", nil)
	if ps := env.exec(t, id, "ps", "-o", "pid,user,args"); !strings.Contains(ps, "/pause") {
		t.Errorf("the pod's infra process is not in the container's PID namespace:\n%s", ps)
	}
}

func TestBadUserNamespaceMappings(t *testing.T) {
	d := startDaemon(t, "--cni-conf-dir", podNetwork(t))
	one := func(c, h, n uint32) []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{ContainerId: c, HostId: h, Length: n}}
	}
	for _, test := range []struct {
		desc       string
		uids, gids []*runtimeapi.IDMapping
		field      string
	}{
		{"container id 0 not mapped", one(1, usernsHostID, 65536), one(0, usernsHostID, 65536), "uids"},
		{"more than one range", append(one(0, usernsHostID, 65536), one(0, usernsHostID+65536, 65536)...), one(0, usernsHostID, 65536), "uids"},
		{"size 0", one(0, usernsHostID, 65536), one(0, usernsHostID, 0), "gids"},
		{"overlapping the id space's end", one(0, 4294967000, 65536), one(0, usernsHostID, 65536), "uids"},
		{"no gid mapping", one(0, usernsHostID, 65536), nil, "gids"},
	} {
		t.Run(test.desc, func(t *testing.T) {
			cfg := podConfig("bad-userns")
			cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: test.uids, Gids: test.gids}
			_, err := d.Runtime.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "userns_options."+test.field) {
				t.Errorf("RunPodSandbox = %v, want InvalidArgument naming userns_options.%s", err, test.field)
			}
		})
	}
}
