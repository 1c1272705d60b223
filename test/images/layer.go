package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the modification time of every file and the creation time of every image, so that the
// same build gives the same digests.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// entry is one file, directory or symlink of a layer.
type entry struct {
	name     string // relative path, no leading slash
	mode     int64
	dir      bool
	linkname string // symlink target, when set
	hardlink string // hard link target (a path in the layer), when set
	content  []byte
	uid, gid int
	// chardev, when set, makes the entry a character device of that major and minor number.
	chardev *[2]int64
}

func dir(name string, mode int64) entry            { return entry{name: name, mode: mode, dir: true} }
func file(name string, mode int64, c []byte) entry { return entry{name: name, mode: mode, content: c} }
func hardlink(name, target string) entry           { return entry{name: name, mode: 0o755, hardlink: target} }
func symlink(name, target string) entry            { return entry{name: name, mode: 0o777, linkname: target} }
func chardev(name string, major, minor int64) entry {
	return entry{name: name, mode: 0o666, chardev: &[2]int64{major, minor}}
}

// layer builds a gzipped OCI layer from entries, adding missing parent directories and writing
// everything in name order (hard links last) with fixed times and owners.
func layer(entries ...entry) (v1.Layer, error) {
	byName := map[string]entry{}
	for _, e := range entries {
		byName[e.name] = e
		for p := path.Dir(e.name); p != "." && p != "/"; p = path.Dir(p) {
			if _, ok := byName[p]; !ok {
				byName[p] = dir(p, 0o755)
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	// Name order, but hard links last: a link's target must come before it in the tar.
	sort.Slice(names, func(i, j int) bool {
		li, lj := byName[names[i]].hardlink != "", byName[names[j]].hardlink != ""
		if li != lj {
			return lj
		}
		return names[i] < names[j]
	})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := byName[n]
		h := &tar.Header{Name: n, Mode: e.mode, ModTime: epoch, Uid: e.uid, Gid: e.gid, Format: tar.FormatPAX}
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, n+"/"
		case e.hardlink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, e.hardlink
		case e.linkname != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.linkname
		case e.chardev != nil:
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, e.chardev[0], e.chardev[1]
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.content))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.content); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed), tarball.WithMediaType(types.OCILayer))
}
