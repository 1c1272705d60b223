package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A failed restore named the last 2 KiB of CRIU's log, which ended in mount lines after the
// error ("Can't fork for 13: File exists" was cut off); the error lines are what tell why.
func TestCRIULogTail(t *testing.T) {
	for _, tc := range []struct {
		desc, log, want, not string
	}{
		{desc: "error lines", log: "(00.05) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self\n(00.09) Error (criu/cr-restore.c:1237): Can't fork for 13: File exists\n" + strings.Repeat("(00.1) mnt: [/etc/hosts](111->103)\n", 100),
			want: "Can't fork for 13: File exists", not: "RLIMIT_NOFILE"},
		{desc: "no error line", log: strings.Repeat("x", 3000) + "the end", want: "the end"},
		{desc: "no log", want: ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			if tc.log != "" {
				os.WriteFile(filepath.Join(dir, "restore.log"), []byte(tc.log), 0o600)
			}
			got := criuLogTail(dir, "restore.log")
			if !strings.Contains(got, tc.want) || (tc.want == "" && got != "") || (tc.not != "" && strings.Contains(got, tc.not)) {
				t.Errorf("criuLogTail = %q, want it to hold %q and not %q", got, tc.want, tc.not)
			}
		})
	}
}

// A container's name becomes a directory of a pod checkpoint (CheckpointPod writes it,
// RestorePod reads it): a name that is not one path element would leave the checkpoint.
func TestContainerDirName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"app", true}, {"web-1.sidecar", true}, {"", false}, {".", false}, {"..", false},
		{"../../etc", false}, {"a/b", false}, {`a\b`, false}, {"a\x00b", false},
	} {
		if err := containerDirName(tc.name); (err == nil) != tc.ok {
			t.Errorf("containerDirName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
