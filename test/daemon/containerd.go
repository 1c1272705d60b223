package daemon

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// ContainerdCRI is a containerd with its own CRI plugin enabled, started in temporary directories:
// the yardstick berth is compared with (critest runs, benchmarks). It runs the same pinned
// containerd and runc that berth uses.
type ContainerdCRI struct {
	Dir    string
	Socket string
	// CDIDir is its CDI spec directory (cdi_spec_dirs), empty at start.
	CDIDir string
	cmd    *exec.Cmd
	done   chan struct{}
}

// CNIConflist returns a bridge network like the default berth installs, on its own bridge and
// subnet, so that two runtimes can run pods side by side.
func CNIConflist(name, bridge, subnet string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
`, name, bridge, subnet)
}

// StartContainerdCRI starts containerd (binary from $BERTH_BIN_DIR, default /opt/berth/bin) with
// its CRI plugin, pulling through the hosts.toml files in registryConfigDir and networking pods
// on a bridge of its own. restrict_oom_score_adj is on: this machine's bounding set lacks
// CAP_SYS_RESOURCE.
func StartContainerdCRI(registryConfigDir string) (*ContainerdCRI, error) {
	dir, err := os.MkdirTemp("", "ctrd-cri-")
	if err != nil {
		return nil, err
	}
	// Traversable, as /run and /var/lib are: runc reaches a user-namespaced pod's bundle below
	// here as the pod's root, which is not the node's.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	binDir := os.Getenv("BERTH_BIN_DIR")
	if binDir == "" {
		binDir = "/opt/berth/bin"
	}
	c := &ContainerdCRI{Dir: dir, Socket: filepath.Join(dir, "containerd.sock"), CDIDir: filepath.Join(dir, "cdi")}
	if err := os.MkdirAll(c.CDIDir, 0o755); err != nil {
		return nil, err
	}
	cniDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cniDir, "10-ctrd.conflist"), []byte(CNIConflist(ctrdNetwork, ctrdBridge, "10.77.0.0/16")), 0o644); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = "%[3]s.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = %[4]q

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  cdi_spec_dirs = [%[6]q]
  # runc under a second name, as Kubernetes' CI configures it for its RuntimeClass specs.
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.test-handler]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/opt/cni/bin"]
    conf_dir = %[5]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, registryConfigDir, cniDir, c.CDIDir)
	configPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	// containerd-cri is the stock build; berth's managed "containerd" has no CRI plugin.
	cmd := exec.Command(filepath.Join(binDir, "containerd-cri"), "--config", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	c.cmd, c.done = cmd, make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if conn, err := net.Dial("unix", c.Socket); err == nil {
			conn.Close()
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("containerd exited at start; see %s", filepath.Join(dir, "containerd.log"))
		default:
		}
		if time.Now().After(deadline) {
			c.Cleanup()
			return nil, fmt.Errorf("containerd did not answer within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Endpoint is the CRI endpoint.
func (c *ContainerdCRI) Endpoint() string { return "unix://" + c.Socket }

// Pid is containerd's process id.
func (c *ContainerdCRI) Pid() int { return c.cmd.Process.Pid }

// The network containerd's pods get: a bridge and host-local IP store of their own.
const (
	ctrdNetwork = "ctrd-cri"
	ctrdBridge  = "ctrdcri0"
)

// Cleanup stops containerd and its shims and removes its directories, and the bridge and IP
// store its network left (the bridge plugin never deletes a bridge).
func (c *ContainerdCRI) Cleanup() {
	if c.cmd != nil {
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	killUnder(c.Dir)
	unmountUnder(c.Dir)
	os.RemoveAll(c.Dir)
	_ = exec.Command("ip", "link", "delete", ctrdBridge).Run()
	os.RemoveAll(filepath.Join("/var/lib/cni/networks", ctrdNetwork))
}
