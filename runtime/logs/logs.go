// Package logs writes container output into the CRI log format the kubelet reads: one entry per
// line, `<timestamp> <stream> <tag> <content>`, where the tag F ends a line and P marks a part
// of a longer one.
package logs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Streams, as the CRI names them.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// DefaultMaxLine is the longest line written as one entry; longer lines are split into partial
// entries (the value containerd's CRI uses, 16 KiB).
const DefaultMaxLine = 16 * 1024

// firstRead is the size of the read that waits for a stream's first output.
const firstRead = 512

// timestampFormat is RFC 3339 with fixed-width nanoseconds, so entries line up.
const timestampFormat = "2006-01-02T15:04:05.000000000Z07:00"

// File is a container's log file, shared by the copiers of its stdout and stderr. Reopen lets
// the kubelet rotate it. It is safe for concurrent use.
type File struct {
	mu   sync.Mutex
	path string
	// dir and name: the file is name inside dir, opened so that neither ".." nor a symlink
	// leads out of dir (the pod's log directory, which the pod's containers may write into).
	dir, name string
	f         *os.File
	// now is the clock; tests set it.
	now func() time.Time
}

// Open opens (creating it and the directories on the way if needed) the log file name inside
// dir for appending. Neither ".." nor a symlink in name can lead out of dir.
func Open(dir, name string) (*File, error) {
	if !filepath.IsLocal(name) {
		return nil, fmt.Errorf("log path %q is not inside the pod's log directory", name)
	}
	l := &File{path: filepath.Join(dir, name), dir: dir, name: name, now: time.Now}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return fmt.Errorf("create log directory: %w", err)
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return fmt.Errorf("open log directory: %w", err)
	}
	defer root.Close()
	if sub := filepath.Dir(l.name); sub != "." {
		if err := root.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("create log directory: %w", err)
		}
	}
	f, err := root.OpenFile(l.name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	l.f = f
	return nil
}

// Reopen closes the file and opens the path again: after the kubelet has renamed the file for
// rotation, output goes to a new one.
func (l *File) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	return l.open()
}

// Close closes the file; later writes fail.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Path is the file's path.
func (l *File) Path() string { return l.path }

// entry writes one log entry in a single write, so entries of the two streams never interleave.
func (l *File) entry(stream string, partial bool, content []byte) error {
	tag := "F"
	if partial {
		tag = "P"
	}
	var b bytes.Buffer
	b.Grow(len(timestampFormat) + len(stream) + len(content) + 5)
	b.WriteString(l.now().Format(timestampFormat))
	b.WriteByte(' ')
	b.WriteString(stream)
	b.WriteByte(' ')
	b.WriteString(tag)
	b.WriteByte(' ')
	b.Write(content)
	b.WriteByte('\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("log file is closed")
	}
	_, err := l.f.Write(b.Bytes())
	return err
}

// Copy writes what r yields as entries of stream until r ends. A line longer than maxLine (0:
// DefaultMaxLine) becomes partial entries and a final full one; output that ends without a
// newline ends with a partial entry. Write errors do not stop the copy: the container's output
// must be drained whatever happens to the file. Copy returns the first write error, if any.
func (l *File) Copy(stream string, r io.Reader, maxLine int) error {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	// The line buffer is made on the stream's first output: most containers of a node write
	// little or nothing, and an idle stream then costs a parked goroutine, not maxLine bytes.
	first := make([]byte, firstRead)
	n, err := r.Read(first)
	if n == 0 && err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
			return nil
		}
		return err
	}
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(first[:n]), r), maxLine)
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case len(chunk) > 0 && chunk[len(chunk)-1] == '\n':
			line := bytes.TrimSuffix(chunk[:len(chunk)-1], []byte{'\r'})
			keep(l.entry(stream, false, line))
		case len(chunk) > 0:
			keep(l.entry(stream, true, chunk))
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrClosed) {
				return firstErr
			}
			keep(err)
			return firstErr
		}
	}
}
