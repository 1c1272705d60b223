package parity

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestFlattenAndDiff(t *testing.T) {
	a := &specs.Spec{Process: &specs.Process{Env: []string{"A=1", "B=2"}, Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 1024}}},
		Mounts: []specs.Mount{{Destination: "/run", Type: "tmpfs", Options: []string{"rw", "nosuid"}}}}
	b := &specs.Spec{Process: &specs.Process{Env: []string{"B=2", "A=1"}},
		Mounts: []specs.Mount{{Destination: "/run", Type: "tmpfs", Options: []string{"nosuid", "rw"}}}}
	fa, err := Flatten(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := Flatten(b)
	if err != nil {
		t.Fatal(err)
	}
	d := Diff("x/", fa, fb)
	// Env order and mount option order mean nothing; the rlimit is the one difference.
	if len(d) != 2 || d[0].Key != "x/process.rlimits[RLIMIT_NOFILE].hard" || d[1].Key != "x/process.rlimits[RLIMIT_NOFILE].soft" {
		t.Errorf("differences %v", d)
	}
}

func TestNormalizer(t *testing.T) {
	n := NewNormalizer("abc123", "<ctr>", "/tmp/berth-1", "<root>")
	f := n.Fields(Fields{
		"linux.namespaces[network].path": `"/tmp/berth-1/state/pods/p/ns/net"`,
		"mounts[/etc/hosts].source":      `"/tmp/berth-1/state/pods/p/hosts"`,
		"linux.cgroupsPath":              `"/parity/abc123"`,
		"mounts[/v].source":              `"/tmp/berth-1/v/` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `"`,
	})
	want := Fields{
		"linux.namespaces[network].path": `"<path>"`,
		"mounts[/etc/hosts].source":      `"<root>/…/hosts"`,
		"linux.cgroupsPath":              `"/parity/<ctr>"`,
		"mounts[/v].source":              `"<root>/…/<digest>"`,
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s = %s, want %s", k, f[k], v)
		}
	}
}

func TestParseViews(t *testing.T) {
	f := Fields{}
	ParseLimits(f, "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            20000                20000                files     \n")
	ParseStatus(f, "Name:\tsleep\nUid:\t0\t0\t0\t0\nCapEff:\t00000000a80425fb\n")
	ParseMountinfo(f, "1 0 8:1 / / rw,relatime - overlay overlay rw,lowerdir=/x\n2 1 0:5 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n")
	want := Fields{
		"limits[Max open files]": "20000 20000", "status.Uid": "0 0 0 0", "status.CapEff": "00000000a80425fb",
		"mount[/]": "overlay rw,relatime", "mount[/sys/fs/cgroup]": "tmpfs / ro,nosuid ro,mode=755",
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s = %q, want %q", k, f[k], v)
		}
	}
}
