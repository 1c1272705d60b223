// Package checkpoint is berth's checkpoint archive: the layout the kubelet, checkpointctl and
// CRI-O share (the CRIU images under checkpoint/, config.dump, spec.dump, status.dump, the root
// file system's changes in rootfs-diff.tar, the container's log), written from a directory and
// read back without trusting it. An archive to restore is hostile input: only regular files and
// directories come out of it, inside the directory it is unpacked into, within size bounds, and
// the process state CRIU would restore is checked against what the new container is allowed.
package checkpoint

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// The files of a container checkpoint, by the names checkpointctl and the kubelet look for.
const (
	ConfigDump   = metadata.ConfigDumpFile      // the container's identity and image (metadata.ContainerConfig)
	SpecDump     = metadata.SpecDumpFile        // the OCI spec it ran with
	StatusDump   = metadata.StatusDumpFile      // its CRI ContainerStatus
	ImagesDir    = metadata.CheckpointDirectory // CRIU's images
	RootfsDiff   = metadata.RootFsDiffTar       // its root file system's changes, an OCI layer
	DumpLog      = metadata.DumpLogFile         // CRIU's log of the dump
	ContainerLog = "container.log"              // the container's CRI log up to the checkpoint
)

// Limits bound what an archive may unpack to.
type Limits struct {
	// Bytes is the most its files may hold together; 0 is 16 GiB.
	Bytes int64
	// Entries is the most entries it may have; 0 is 100,000.
	Entries int
}

func (l Limits) bytes() int64 {
	if l.Bytes > 0 {
		return l.Bytes
	}
	return 16 << 30
}

func (l Limits) entries() int {
	if l.Entries > 0 {
		return l.Entries
	}
	return 100_000
}

// Write writes the files under dir to a tar archive at dst, created with mode 0600: written
// beside dst and renamed, so that dst is either whole or absent. Names are relative to dir, as
// the kubelet's e2e test and checkpointctl expect ("config.dump", "checkpoint/inventory.img").
// dir may hold only directories and regular files.
func Write(dst, dir string) (retErr error) {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("checkpoint archive %s: %w", dst, err)
	}
	defer func() {
		if retErr != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(tmp, 1<<20)
	tw := tar.NewWriter(bw)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.IsDir() && !info.Mode().IsRegular() {
			return fmt.Errorf("%s is neither a file nor a directory", path)
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("checkpoint archive %s: %w", dst, err)
	}
	return nil
}

// Extract unpacks the archive at src (a tar, or a gzip-compressed one) into dst, an empty
// directory of the caller's. keep, when not nil, chooses the entries to unpack by name. Only
// directories and regular files are unpacked, with modes no wider than 0700 and 0600: a link,
// device or fifo, a name that leaves dst, a duplicate, or more than lim allows fails the whole
// extraction with an InvalidArgument error naming the entry; what was unpacked stays for the
// caller to remove with dst.
func Extract(src, dst string, keep func(name string) bool, lim Limits) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("checkpoint archive %s: %w", src, err)
	}
	defer f.Close()
	if err := ExtractReader(f, dst, keep, lim); err != nil {
		return fmt.Errorf("checkpoint archive %s: %w", src, err)
	}
	return nil
}

// ExtractReader is Extract of the archive read from r.
func ExtractReader(r io.Reader, dst string, keep func(name string) bool, lim Limits) error {
	r, err := decompressed(r)
	if err != nil {
		return err
	}
	return extract(tar.NewReader(r), dst, keep, lim)
}

// decompressed reads r through gzip when it starts with gzip's magic.
func decompressed(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}

func extract(tr *tar.Reader, dst string, keep func(string) bool, lim Limits) error {
	seen := map[string]bool{}
	var total int64
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
		}
		if n >= lim.entries() {
			return fmt.Errorf("more than %d entries: %w", lim.entries(), errdefs.ErrInvalidArgument)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "" || (keep != nil && !keep(name)) {
			continue
		}
		if seen[name] {
			return fmt.Errorf("entry %q: twice in the archive: %w", hdr.Name, errdefs.ErrInvalidArgument)
		}
		seen[name] = true
		path := filepath.Join(dst, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if hdr.Size < 0 || total+hdr.Size > lim.bytes() {
				return fmt.Errorf("entry %q: the archive holds more than %d bytes: %w", hdr.Name, lim.bytes(), errdefs.ErrInvalidArgument)
			}
			total += hdr.Size
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			if err := writeFile(path, tr, hdr.Size); err != nil {
				return fmt.Errorf("entry %q: %w", hdr.Name, err)
			}
		default:
			return fmt.Errorf("entry %q: %s entries are not accepted (only files and directories): %w",
				hdr.Name, typeName(hdr.Typeflag), errdefs.ErrInvalidArgument)
		}
	}
}

// entryName is an archive entry's name, cleaned and relative; "" for the archive's root. A name
// that is absolute or climbs out of the root is an error.
func entryName(raw string) (string, error) {
	name := strings.TrimPrefix(filepath.ToSlash(raw), "./")
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		return "", nil
	}
	if strings.HasPrefix(name, "/") || !filepath.IsLocal(name) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("entry %q: leaves the archive's directory: %w", raw, errdefs.ErrInvalidArgument)
	}
	return filepath.Clean(name), nil
}

// writeFile creates path (which must not exist: no link is followed) with size bytes from r.
func writeFile(path string, r io.Reader, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("type %q", t)
}

// CopyTree copies the checkpoint at src, a directory that is not berth's (a pod checkpoint the
// kubelet keeps), into dst, an empty directory of the caller's, on the same terms as Extract:
// directories and regular files only, reached without following a link, within lim; anything
// else is an InvalidArgument error naming it. src is not modified.
func CopyTree(src, dst string, lim Limits) error {
	var (
		total int64
		n     int
	)
	var walk func(rel string) error
	walk = func(rel string) error {
		d, err := openInRoot(src, rel)
		if err != nil {
			return fmt.Errorf("checkpoint %s: %v: %w", filepath.Join(src, rel), err, errdefs.ErrInvalidArgument)
		}
		entries, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", filepath.Join(src, rel), err)
		}
		for _, e := range entries {
			if n++; n > lim.entries() {
				return fmt.Errorf("checkpoint %s: more than %d entries: %w", src, lim.entries(), errdefs.ErrInvalidArgument)
			}
			name := filepath.Join(rel, e.Name())
			switch {
			case e.Type().IsDir():
				if err := os.Mkdir(filepath.Join(dst, name), 0o700); err != nil {
					return err
				}
				if err := walk(name); err != nil {
					return err
				}
			case e.Type().IsRegular():
				f, err := OpenFile(src, name)
				if err != nil {
					return err
				}
				fi, err := f.Stat()
				if err == nil && total+fi.Size() > lim.bytes() {
					err = fmt.Errorf("checkpoint %s: more than %d bytes: %w", src, lim.bytes(), errdefs.ErrInvalidArgument)
				}
				if err == nil {
					total += fi.Size()
					err = writeFile(filepath.Join(dst, name), f, fi.Size())
				}
				f.Close()
				if err != nil {
					return err
				}
			default:
				return fmt.Errorf("checkpoint %s: %s is neither a file nor a directory: %w", src, name, errdefs.ErrInvalidArgument)
			}
		}
		return nil
	}
	return walk(".")
}
