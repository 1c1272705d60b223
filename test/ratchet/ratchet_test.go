package ratchet

import (
	"io"
	"os"
	"testing"
)

func TestScore(t *testing.T) {
	expected := map[string]bool{"a": true, "b": true}
	tests := []struct {
		desc    string
		focus   string
		results []Result
		want    int
	}{
		{desc: "all expected pass, one newly passing", results: []Result{{"a", Passed}, {"b", Passed}, {"c", Passed}}, want: 0},
		{desc: "an expected spec fails", results: []Result{{"a", Passed}, {"b", Failed}}, want: 1},
		{desc: "an expected spec is skipped", results: []Result{{"a", Passed}, {"b", Skipped}}, want: 1},
		{desc: "an expected spec is missing", results: []Result{{"a", Passed}}, want: 1},
		{desc: "an unexpected spec fails", results: []Result{{"a", Passed}, {"b", Passed}, {"c", Failed}}, want: 0},
		{desc: "focused run: expected specs outside the focus are skipped or absent", focus: "c",
			results: []Result{{"a", Skipped}, {"c", Passed}}, want: 0},
		{desc: "focused run: an expected spec inside the focus fails", focus: "a",
			results: []Result{{"a", Failed}}, want: 1},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			if got := Score(io.Discard, "suite", test.results, expected, nil, test.focus != ""); got != test.want {
				t.Errorf("score = %d, want %d", got, test.want)
			}
		})
	}
}

func TestReadSkipsNeedsAReason(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) string {
		p := dir + "/skip.txt"
		if err := writeString(p, content); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := ReadSkips(write("spec without reason\n")); err == nil {
		t.Error("a skip without a reason was accepted")
	}
	skips, err := ReadSkips(write("# comment\nsome spec # needs a fixed public digest\n"))
	if err != nil || len(skips) != 1 || skips[0].Spec != "some spec" || skips[0].Reason != "needs a fixed public digest" {
		t.Errorf("readSkips = %+v, %v", skips, err)
	}
}

func writeString(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
