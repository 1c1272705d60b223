package config

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	file := writeFile(t, `
listen = "/tmp/file.sock"
root = "/tmp/file-root"
cni-bin-dirs = ["/a", "/b"]
log-level = "debug"
`)
	tests := []struct {
		desc    string
		args    []string
		want    func(*Config)
		wantErr string
	}{
		{
			desc: "defaults when no file and no flags",
			args: []string{"--config", writeFile(t, "")},
			want: func(*Config) {},
		},
		{
			desc: "file overrides defaults",
			args: []string{"--config", file},
			want: func(c *Config) {
				c.Listen, c.Root, c.CNIBinDirs, c.LogLevel = "/tmp/file.sock", "/tmp/file-root", []string{"/a", "/b"}, "debug"
			},
		},
		{
			desc: "flags override the file",
			args: []string{"--config", file, "--listen", "/tmp/flag.sock", "--cni-bin-dirs", "/x, /y", "--cgroup-driver=systemd"},
			want: func(c *Config) {
				c.Listen, c.Root, c.CNIBinDirs, c.LogLevel = "/tmp/flag.sock", "/tmp/file-root", []string{"/x", "/y"}, "debug"
				c.CgroupDriver = "systemd"
			},
		},
		{
			desc: "flag order does not matter: --config after other flags",
			args: []string{"--state", "/tmp/s", "--config", file},
			want: func(c *Config) {
				c.Listen, c.Root, c.CNIBinDirs, c.LogLevel = "/tmp/file.sock", "/tmp/file-root", []string{"/a", "/b"}, "debug"
				c.State = "/tmp/s"
			},
		},
		{desc: "explicit config file must exist", args: []string{"--config", "/nonexistent/berth.toml"}, wantErr: "read config file"},
		{desc: "unknown key in file", args: []string{"--config", writeFile(t, "lisen = \"/x\"\n")}, wantErr: "unknown key"},
		{desc: "malformed file", args: []string{"--config", writeFile(t, "listen = \n")}, wantErr: "config file"},
		{desc: "wrong type in file", args: []string{"--config", writeFile(t, "listen = 3\n")}, wantErr: "config file"},
		{desc: "unknown flag", args: []string{"--config", file, "--bogus"}, wantErr: "bogus"},
		{desc: "bad cgroup driver", args: []string{"--config", file, "--cgroup-driver", "cgroupz"}, wantErr: `cgroup-driver: "cgroupz"`},
		{desc: "bad log level", args: []string{"--config", file, "--log-level", "loud"}, wantErr: `log-level: "loud"`},
		{desc: "relative root", args: []string{"--config", file, "--root", "var/lib"}, wantErr: "root: \"var/lib\" is not an absolute path"},
		{desc: "empty listen", args: []string{"--config", file, "--listen", ""}, wantErr: "listen: must not be empty"},
		{desc: "bad stream address", args: []string{"--config", file, "--stream-address", "nope"}, wantErr: "stream-address"},
		{desc: "stream TLS cert without key", args: []string{"--config", file, "--stream-tls-cert-file", "/etc/berth/stream.crt"}, wantErr: "stream-tls-key-file"},
		{desc: "bad metrics address", args: []string{"--config", file, "--metrics-address", "1.2.3.4"}, wantErr: "metrics-address"},
		{desc: "bad debug address", args: []string{"--config", file, "--debug-address", "localhost"}, wantErr: "debug-address"},
		{
			desc: "duration from file and flag",
			args: []string{"--config", writeFile(t, "image-pull-progress-timeout = \"90s\"\n"), "--log-level", "warn"},
			want: func(c *Config) { c.ImagePullProgressTimeout, c.LogLevel = Duration(90*time.Second), "warn" },
		},
		{desc: "bad duration", args: []string{"--config", file, "--image-pull-progress-timeout", "soon"}, wantErr: `"soon" is not a duration`},
		{desc: "zero duration", args: []string{"--config", file, "--image-pull-progress-timeout", "0s"}, wantErr: "image-pull-progress-timeout: 0s must be positive"},
		{desc: "stray argument", args: []string{"--config", file, "extra"}, wantErr: `unexpected argument "extra"`},
		{
			desc: "runtime handlers from file and flags",
			args: []string{"--config", writeFile(t, "[runtime-handlers]\ntest-handler = \"\"\nkata = \"/usr/bin/kata-runtime\"\n"),
				"--runtime-handler", "crun=/usr/bin/crun", "--runtime-handler", "other"},
			want: func(c *Config) {
				c.RuntimeHandlers = map[string]string{"test-handler": "", "kata": "/usr/bin/kata-runtime", "crun": "/usr/bin/crun", "other": ""}
			},
		},
		{desc: "runtime handler that is no DNS label", args: []string{"--config", file, "--runtime-handler", "My_Handler"}, wantErr: `runtime-handlers: "My_Handler" is not a handler name`},
		{desc: "runtime handler named as the default", args: []string{"--config", file, "--runtime-handler", "runc=/usr/bin/runc"}, wantErr: `"runc" is the default handler`},
		{desc: "runtime handler with a relative binary", args: []string{"--config", file, "--runtime-handler", "crun=crun"}, wantErr: `crun = "crun" is not an absolute path`},
		{desc: "runtime handler without a name", args: []string{"--config", file, "--runtime-handler", "=/usr/bin/crun"}, wantErr: "want name"},
		{
			desc: "annotation allowlists",
			args: []string{"--config", writeFile(t, "[runtime-handlers]\nkata = \"\"\n[pod-annotations]\nrunc = [\"example.com/*\"]\n[container-annotations]\nkata = [\"io.katacontainers.config.hypervisor.*\"]\n")},
			want: func(c *Config) {
				c.RuntimeHandlers = map[string]string{"kata": ""}
				c.PodAnnotations = map[string][]string{"runc": {"example.com/*"}}
				c.ContainerAnnotations = map[string][]string{"kata": {"io.katacontainers.config.hypervisor.*"}}
			},
		},
		{desc: "annotation allowlist of no handler", args: []string{"--config", writeFile(t, "[pod-annotations]\nkata = [\"example.com/*\"]\n")}, wantErr: `"kata" is not a runtime handler`},
		{desc: "annotation allowlist passing systemd properties", args: []string{"--config", writeFile(t, "[container-annotations]\nrunc = [\"org.*\"]\n")}, wantErr: `would pass "org.systemd.property.CPUQuota"`},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			got, err := Parse(test.args, io.Discard)
			if test.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), test.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", test.args, err, test.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", test.args, err)
			}
			want := Default()
			test.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse(%q) =\n%+v\nwant\n%+v", test.args, got, want)
			}
		})
	}
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestParseUlimit(t *testing.T) {
	tests := []struct {
		desc, in string
		want     Ulimit
		wantErr  bool
	}{
		{desc: "soft and hard", in: "nofile=1024:2048", want: Ulimit{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 2048}},
		{desc: "one limit for both", in: "nproc=4096", want: Ulimit{Type: "RLIMIT_NPROC", Soft: 4096, Hard: 4096}},
		{desc: "unknown name", in: "files=10", wantErr: true},
		{desc: "no value", in: "nofile", wantErr: true},
		{desc: "soft above hard", in: "nofile=10:5", wantErr: true},
		{desc: "not a number", in: "nofile=many", wantErr: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			got, err := ParseUlimit(test.in)
			if (err != nil) != test.wantErr || got != test.want {
				t.Errorf("ParseUlimit(%q) = %+v, %v; want %+v, error %v", test.in, got, err, test.want, test.wantErr)
			}
		})
	}
}
