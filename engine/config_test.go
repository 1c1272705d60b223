package engine

import (
	"slices"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// TestConfigTOML: the managed containerd's configuration is valid TOML (version 3) and says what
// berth means it to, read back as containerd reads it.
func TestConfigTOML(t *testing.T) {
	m := &Managed{RootDir: `/var/lib/berth "quoted"`, StateDir: "/run/berth", LogLevel: "debug"}
	var cfg struct {
		Version         int      `toml:"version"`
		Root            string   `toml:"root"`
		State           string   `toml:"state"`
		DisabledPlugins []string `toml:"disabled_plugins"`
		GRPC            struct {
			Address string `toml:"address"`
		} `toml:"grpc"`
		TTRPC struct {
			Address string `toml:"address"`
		} `toml:"ttrpc"`
		Debug struct {
			Level string `toml:"level"`
		} `toml:"debug"`
		Plugins map[string]map[string]any `toml:"plugins"`
	}
	if err := toml.Unmarshal([]byte(m.configTOML()), &cfg); err != nil {
		t.Fatalf("%v\n%s", err, m.configTOML())
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"version", cfg.Version, 3},
		{"root", cfg.Root, `/var/lib/berth "quoted"/containerd`},
		{"state", cfg.State, "/run/berth/containerd"},
		{"grpc address", cfg.GRPC.Address, "/run/berth/containerd/containerd.sock"},
		{"ttrpc address", cfg.TTRPC.Address, "/run/berth/containerd/containerd.sock.ttrpc"},
		{"log level", cfg.Debug.Level, "debug"},
		{"CRI disabled", slices.Contains(cfg.DisabledPlugins, "io.containerd.grpc.v1.cri"), true},
		{"opt path", cfg.Plugins["io.containerd.internal.v1.opt"]["path"], `/var/lib/berth "quoted"/containerd/opt`},
		{"layers applied at once", cfg.Plugins["io.containerd.transfer.v1.local"]["max_concurrent_unpacks"], int64(maxConcurrentUnpacks())},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if maxConcurrentUnpacks() < 2 {
		t.Errorf("max_concurrent_unpacks = %d: containerd applies layers one at a time below 2", maxConcurrentUnpacks())
	}
}
