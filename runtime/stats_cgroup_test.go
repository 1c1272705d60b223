package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadCgroup1(t *testing.T) {
	root := t.TempDir()
	roots := map[string]string{"cpuacct": filepath.Join(root, "cpu,cpuacct"), "memory": filepath.Join(root, "memory"), "pids": filepath.Join(root, "pids")}
	writeFiles(t, root, map[string]string{
		"cpu,cpuacct/pod/c/cpuacct.usage":          "123456789\n",
		"memory/pod/c/memory.usage_in_bytes":       "10000\n",
		"memory/pod/c/memory.limit_in_bytes":       "9223372036854771712\n",
		"memory/pod/c/memory.memsw.usage_in_bytes": "10500\n",
		"memory/pod/c/memory.stat":                 "cache 100\nrss 7\ntotal_rss 4000\ntotal_inactive_file 3000\ntotal_pgfault 55\ntotal_pgmajfault 2\n",
		"pids/pod/c/pids.current":                  "3\n",
		"cpu,cpuacct/limited/cpuacct.usage":        "1\n",
		"memory/limited/memory.limit_in_bytes":     "1048576\n",
		"memory/limited/memory.usage_in_bytes":     "4096\n",
		"memory/limited/memory.stat":               "total_inactive_file 8192\n",
	})
	tests := []struct {
		path string
		want cgroupUsage
	}{
		{"/pod/c", cgroupUsage{CPUNanos: 123456789, MemoryUsage: 10000, WorkingSet: 7000, RSS: 4000, PageFaults: 55, MajorPageFaults: 2, SwapUsage: 500, Processes: 3}},
		// A limit is reported; more inactive file pages than usage is a working set of 0; no
		// memsw, no pids file: no swap, no process count.
		{"/limited", cgroupUsage{CPUNanos: 1, MemoryUsage: 4096, MemoryLimit: 1048576}},
	}
	for _, test := range tests {
		got, err := readCgroup1(roots, test.path)
		if err != nil || got != test.want {
			t.Errorf("readCgroup1(%s) = %+v, %v; want %+v", test.path, got, err, test.want)
		}
	}
	if _, err := readCgroup1(roots, "/gone"); err == nil {
		t.Error("readCgroup1 of a cgroup that is not there: no error")
	}
}

func TestReadCgroup2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"c/cpu.stat":            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
		"c/memory.current":      "20000\n",
		"c/memory.max":          "max\n",
		"c/memory.stat":         "anon 9000\nfile 5000\ninactive_file 4000\npgfault 77\npgmajfault 1\n",
		"c/memory.swap.current": "300\n",
		"c/pids.current":        "2\n",
		"c/cpu.pressure":        "some avg10=1.50 avg60=0.25 avg300=0.05 total=4200\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		"c/memory.pressure":     "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3\n",
		"c/io.pressure":         "some avg10=12.00 avg60=3.00 avg300=1.00 total=900000\nfull avg10=10.00 avg60=2.50 avg300=0.75 total=800000\n",
		"l/cpu.stat":            "usage_usec 1\n",
		"l/memory.max":          "65536\n",
	})
	tests := []struct {
		dir  string
		want cgroupUsage
	}{
		{"c", cgroupUsage{CPUNanos: 1500000, MemoryUsage: 20000, WorkingSet: 16000, RSS: 9000, PageFaults: 77, MajorPageFaults: 1, SwapUsage: 300, Processes: 2,
			CPUPressure:    &pressure{Some: pressureLine{Avg10: 1.5, Avg60: 0.25, Avg300: 0.05, TotalMicros: 4200}},
			MemoryPressure: &pressure{Some: pressureLine{TotalMicros: 7}, Full: pressureLine{TotalMicros: 3}},
			IOPressure:     &pressure{Some: pressureLine{Avg10: 12, Avg60: 3, Avg300: 1, TotalMicros: 900000}, Full: pressureLine{Avg10: 10, Avg60: 2.5, Avg300: 0.75, TotalMicros: 800000}},
		}},
		{"l", cgroupUsage{CPUNanos: 1000, MemoryLimit: 65536}}, // no pressure files: PSI off
	}
	for _, test := range tests {
		got, err := readCgroup2(filepath.Join(root, test.dir))
		if err != nil || !reflect.DeepEqual(got, test.want) {
			t.Errorf("readCgroup2(%s) = %+v, %v; want %+v", test.dir, got, err, test.want)
		}
	}
	if _, err := readCgroup2(filepath.Join(root, "gone")); err == nil {
		t.Error("readCgroup2 of a cgroup that is not there: no error")
	}
}

func TestParsePressure(t *testing.T) {
	for _, tc := range []struct {
		desc, in string
		want     *pressure
	}{
		{desc: "some only (an older kernel's cpu.pressure)", in: "some avg10=0.10 avg60=0.20 avg300=0.30 total=5\n",
			want: &pressure{Some: pressureLine{Avg10: 0.1, Avg60: 0.2, Avg300: 0.3, TotalMicros: 5}}},
		{desc: "some and full", in: "some avg10=1.00 avg60=0.00 avg300=0.00 total=10\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=6\n",
			want: &pressure{Some: pressureLine{Avg10: 1, TotalMicros: 10}, Full: pressureLine{Avg10: 0.5, TotalMicros: 6}}},
		{desc: "empty", in: ""},
		{desc: "not a pressure file", in: "max 100000\n"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := parsePressure([]byte(tc.in)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parsePressure(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// The node's own root cgroup reads as the library reads it (v1 hosts).
func TestReadCgroup1OfTheNode(t *testing.T) {
	roots := v1Roots()
	if roots["cpuacct"] == "" || roots["memory"] == "" {
		t.Skip("no cgroup v1 cpuacct and memory hierarchies here")
	}
	u, err := readCgroup1(roots, "/")
	if err != nil {
		t.Fatal(err)
	}
	if u.CPUNanos == 0 || u.MemoryUsage == 0 || u.RSS == 0 {
		t.Errorf("root cgroup usage = %+v; want CPU time, memory and anonymous memory", u)
	}
}
