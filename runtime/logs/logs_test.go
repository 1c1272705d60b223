package logs

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func fixedClock() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 5, time.UTC) }

func TestCopy(t *testing.T) {
	const ts = "2026-11-22T10:00:00.000000005Z"
	tests := []struct {
		desc    string
		in      string
		maxLine int
		want    []string
	}{
		{desc: "full lines", in: "a\nbc\n", want: []string{ts + " stdout F a", ts + " stdout F bc"}},
		{desc: "empty line", in: "\n", want: []string{ts + " stdout F "}},
		{desc: "CRLF", in: "a\r\n", want: []string{ts + " stdout F a"}},
		{desc: "no final newline", in: "a\nlast", want: []string{ts + " stdout F a", ts + " stdout P last"}},
		{desc: "long line split", in: "abcdefghij\n", maxLine: 16, want: []string{ts + " stdout F abcdefghij"}},
		{desc: "longer than max", in: strings.Repeat("x", 40) + "\n", maxLine: 16,
			want: []string{ts + " stdout P " + strings.Repeat("x", 16), ts + " stdout P " + strings.Repeat("x", 16), ts + " stdout F " + strings.Repeat("x", 8)}},
		{desc: "nothing", in: "", want: nil},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c.log")
			l, err := Open(dir, "c.log")
			if err != nil {
				t.Fatal(err)
			}
			l.now = fixedClock
			if err := l.Copy(Stdout, strings.NewReader(test.in), test.maxLine); err != nil {
				t.Fatal(err)
			}
			l.Close()
			b, _ := os.ReadFile(path)
			got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(b) == 0 {
				got = nil
			}
			if strings.Join(got, "|") != strings.Join(test.want, "|") {
				t.Errorf("log =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(test.want, "\n"))
			}
		})
	}
}

// A stream that is read in small pieces (a pipe) gives the same entries as one read whole.
func TestCopyOfASlowStream(t *testing.T) {
	const ts = "2026-11-22T10:00:00.000000005Z"
	in := "first\n" + strings.Repeat("y", 700) + "\nlast"
	want := []string{ts + " stdout F first", ts + " stdout F " + strings.Repeat("y", 700), ts + " stdout P last"}
	dir := t.TempDir()
	l, err := Open(dir, "c.log")
	if err != nil {
		t.Fatal(err)
	}
	l.now = fixedClock
	if err := l.Copy(Stdout, iotest.OneByteReader(strings.NewReader(in)), 0); err != nil {
		t.Fatal(err)
	}
	l.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "c.log"))
	if got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("log =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A stream that never writes costs no line buffer: a node's idle containers hold none.
func TestCopyOfASilentStreamHoldsNoLineBuffer(t *testing.T) {
	l, err := Open(t.TempDir(), "c.log")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := l.Copy(Stdout, strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n >= DefaultMaxLine {
		t.Errorf("copying a silent stream allocated %d bytes, want less than a line buffer (%d)", n, DefaultMaxLine)
	}
}

func TestStreamsDoNotInterleaveAndReopenRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	l, err := Open(dir, "c.log")
	if err != nil {
		t.Fatal(err)
	}
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	var wg sync.WaitGroup
	for _, c := range []struct {
		stream string
		r      io.Reader
	}{{Stdout, outR}, {Stderr, errR}} {
		wg.Add(1)
		go func() { defer wg.Done(); l.Copy(c.stream, c.r, 0) }()
	}
	line := strings.Repeat("y", 1000) + "\n"
	for range 100 {
		io.WriteString(outW, line)
		io.WriteString(errW, line)
	}
	// Wait until both copiers have written everything (a pipe write returns once read, not
	// once written to the file).
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), "\n") == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Rotate: the kubelet renames the file, then asks for a reopen.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(outW, "after rotation\n")
	outW.Close()
	errW.Close()
	wg.Wait()
	l.Close()

	old, _ := os.ReadFile(path + ".1")
	for _, entry := range strings.Split(strings.TrimSuffix(string(old), "\n"), "\n") {
		f := strings.SplitN(entry, " ", 4)
		if len(f) != 4 || (f[1] != Stdout && f[1] != Stderr) || f[2] != "F" || f[3] != strings.TrimSuffix(line, "\n") {
			t.Fatalf("mangled entry %.80q", entry)
		}
	}
	if n := strings.Count(string(old), "\n"); n != 200 {
		t.Errorf("rotated file has %d entries, want 200", n)
	}
	cur, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(cur), " stdout F after rotation\n") || strings.Count(string(cur), "\n") != 1 {
		t.Errorf("new file = %q", cur)
	}
}

// A log path cannot lead out of the pod's log directory: not with "..", not through a symlink
// that something in the pod put there.
func TestOpenStaysInTheLogDirectory(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "x.log"), filepath.Join(dir, "link.log")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../x.log", "/etc/x.log", "escape/x.log", "link.log"} {
		if l, err := Open(dir, name); err == nil {
			l.Close()
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("files written outside the log directory: %v", entries)
	}
	l, err := Open(dir, "app/0.log")
	if err != nil {
		t.Fatalf("a log in a subdirectory: %v", err)
	}
	l.Close()
}
