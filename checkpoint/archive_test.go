package checkpoint

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

type entry struct {
	name     string
	typ      byte
	body     string
	linkname string
	mode     int64
}

func tarOf(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: mode, Size: int64(len(e.body)), Linkname: e.linkname}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// Extract takes files and directories only, inside its directory, within its limits: each
// refusal is the hostile archive of a peer's advisory (containerd's GHSA-rgh6-rfwx-v388: a
// container.log that is a link to a node's file).
func TestExtract(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		entries []entry
		lim     Limits
		keep    func(string) bool
		wantErr string // "" for success
		want    map[string]string
	}{
		{desc: "files and directories", entries: []entry{
			{name: "checkpoint/", typ: tar.TypeDir, mode: 0o777},
			{name: "checkpoint/inventory.img", typ: tar.TypeReg, body: "inv", mode: 0o4777},
			{name: "./config.dump", typ: tar.TypeReg, body: "{}"},
		}, want: map[string]string{"checkpoint/inventory.img": "inv", "config.dump": "{}"}},
		{desc: "a symbolic link", entries: []entry{{name: "container.log", typ: tar.TypeSymlink, linkname: "/etc/shadow"}},
			wantErr: "symbolic link"},
		{desc: "a hard link", entries: []entry{{name: "container.log", typ: tar.TypeLink, linkname: "/etc/shadow"}},
			wantErr: "hard link"},
		{desc: "a device", entries: []entry{{name: "checkpoint/pages-1.img", typ: tar.TypeChar}}, wantErr: "device"},
		{desc: "a fifo", entries: []entry{{name: "container.log", typ: tar.TypeFifo}}, wantErr: "fifo"},
		{desc: "a name that climbs out", entries: []entry{{name: "../../etc/cron.d/x", typ: tar.TypeReg, body: "x"}},
			wantErr: "leaves the archive's directory"},
		{desc: "an absolute name", entries: []entry{{name: "/etc/cron.d/x", typ: tar.TypeReg, body: "x"}},
			wantErr: "leaves the archive's directory"},
		{desc: "a name twice", entries: []entry{{name: "spec.dump", typ: tar.TypeReg, body: "a"}, {name: "./spec.dump", typ: tar.TypeReg, body: "b"}},
			wantErr: "twice"},
		{desc: "more bytes than the limit", entries: []entry{{name: "a", typ: tar.TypeReg, body: "12345"}, {name: "b", typ: tar.TypeReg, body: "67890"}},
			lim: Limits{Bytes: 8}, wantErr: "more than 8 bytes"},
		{desc: "more entries than the limit", entries: []entry{{name: "a", typ: tar.TypeReg}, {name: "b", typ: tar.TypeReg}, {name: "c", typ: tar.TypeReg}},
			lim: Limits{Entries: 2}, wantErr: "more than 2 entries"},
		{desc: "chosen entries only", entries: []entry{{name: "config.dump", typ: tar.TypeReg, body: "c"}, {name: "rootfs-diff.tar", typ: tar.TypeSymlink, linkname: "/"}},
			keep: func(n string) bool { return n == "config.dump" }, want: map[string]string{"config.dump": "c"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			outside := filepath.Dir(dir)
			err := ExtractReader(bytes.NewReader(tarOf(t, tc.entries)), dir, tc.keep, tc.lim)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want InvalidArgument with %q", err, tc.wantErr)
				}
				if _, err := os.Lstat(filepath.Join(outside, "etc")); err == nil {
					t.Fatal("wrote outside its directory")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, body := range tc.want {
				fi, err := os.Lstat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v, want a regular file 0600", name, fi.Mode())
				}
				if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != body {
					t.Errorf("%s: %q, want %q", name, b, body)
				}
			}
		})
	}
}

// Write and Extract are each other's inverse, and a gzip-compressed archive reads as well.
func TestWriteExtract(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, ImagesDir), 0o700)
	os.WriteFile(filepath.Join(src, ImagesDir, "inventory.img"), []byte("inventory"), 0o600)
	os.WriteFile(filepath.Join(src, ConfigDump), []byte(`{"id":"x"}`), 0o600)
	archive := filepath.Join(t.TempDir(), "a.tar")
	if err := Write(archive, src); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(archive); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive: %v, %v; want mode 0600", fi, err)
	}
	names := map[string]bool{}
	f, _ := os.Open(archive)
	tr := tar.NewReader(f)
	for hdr, err := tr.Next(); err == nil; hdr, err = tr.Next() {
		names[hdr.Name] = true
	}
	f.Close()
	for _, n := range []string{"config.dump", "checkpoint/", "checkpoint/inventory.img"} {
		if !names[n] {
			t.Errorf("archive has no %q: %v", n, names)
		}
	}
	raw, _ := os.ReadFile(archive)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	for _, in := range [][]byte{raw, gz.Bytes()} {
		dst := t.TempDir()
		if err := ExtractReader(bytes.NewReader(in), dst, nil, Limits{}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dst, ImagesDir, "inventory.img")); string(b) != "inventory" {
			t.Errorf("inventory.img: %q", b)
		}
	}
	if err := Write(filepath.Join(t.TempDir(), "no", "such", "dir.tar"), src); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
}

// ReadMetadata and OpenFile follow no link, take regular files only and bound their size.
func TestReadMetadata(t *testing.T) {
	good := func(dir string) {
		os.WriteFile(filepath.Join(dir, ConfigDump), []byte(`{"id":"c1","rootfsImageRef":"sha256:abc"}`), 0o600)
		os.WriteFile(filepath.Join(dir, SpecDump), []byte(`{"ociVersion":"1.2.0"}`), 0o600)
		os.WriteFile(filepath.Join(dir, StatusDump), []byte(`{"id":"c1","metadata":{"name":"counter"}}`), 0o600)
	}
	for _, tc := range []struct {
		desc    string
		mutate  func(dir string)
		wantErr string
	}{
		{desc: "all three", mutate: func(string) {}},
		{desc: "a link to the node's file", mutate: func(dir string) {
			os.Remove(filepath.Join(dir, SpecDump))
			os.Symlink("/etc/passwd", filepath.Join(dir, SpecDump))
		}, wantErr: "spec.dump"},
		{desc: "a directory", mutate: func(dir string) {
			os.Remove(filepath.Join(dir, StatusDump))
			os.Mkdir(filepath.Join(dir, StatusDump), 0o700)
		}, wantErr: "not a regular file"},
		{desc: "missing", mutate: func(dir string) { os.Remove(filepath.Join(dir, ConfigDump)) }, wantErr: "has no config.dump"},
		{desc: "not JSON", mutate: func(dir string) { os.WriteFile(filepath.Join(dir, ConfigDump), []byte("{"), 0o600) }, wantErr: "config.dump"},
		{desc: "too big", mutate: func(dir string) {
			os.WriteFile(filepath.Join(dir, SpecDump), bytes.Repeat([]byte(" "), maxMetadata+1), 0o600)
		}, wantErr: "more than"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			good(dir)
			tc.mutate(dir)
			c, err := ReadMetadata(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want InvalidArgument with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Config.ID != "c1" || c.Config.RootfsImageRef != "sha256:abc" || c.Status.GetMetadata().GetName() != "counter" {
				t.Errorf("read %+v", c)
			}
		})
	}
}

// CopyTree copies files and directories, and refuses a link anywhere in the tree.
func TestCopyTree(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "containers", "a", ImagesDir), 0o755)
	os.WriteFile(filepath.Join(src, "pod.options"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(src, "containers", "a", ImagesDir, "pages-1.img"), []byte("pages"), 0o644)
	dst := t.TempDir()
	if err := CopyTree(src, dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "containers", "a", ImagesDir, "pages-1.img")); string(b) != "pages" {
		t.Errorf("pages-1.img: %q", b)
	}
	if err := CopyTree(src, t.TempDir(), Limits{Bytes: 4}); err == nil || !errdefs.IsInvalidArgument(err) {
		t.Errorf("over the byte limit: %v", err)
	}
	for _, link := range []string{filepath.Join(src, "containers", "a", "container.log"), filepath.Join(src, "containers", "b")} {
		os.Symlink("/etc", link)
		err := CopyTree(src, t.TempDir(), Limits{})
		if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "neither a file nor a directory") {
			t.Errorf("with the link %s: %v", link, err)
		}
		os.Remove(link)
	}
}

// A pod checkpoint's files read back as written; another layout version is refused.
func TestPodMetadata(t *testing.T) {
	dir := t.TempDir()
	p := &Pod{Dump: PodDumpInfo{RuntimeHandler: "runc"}}
	p.Options.Version, p.Options.Containers = PodVersion, map[string]string{"app": "c1"}
	if err := WritePod(dir, p); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPod(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Options.Containers["app"] != "c1" || got.Dump.RuntimeHandler != "runc" {
		t.Errorf("read %+v", got)
	}
	p.Options.Version = PodVersion + 1
	WritePod(dir, p)
	if _, err := ReadPod(dir); err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "version") {
		t.Errorf("another version: %v", err)
	}
}
