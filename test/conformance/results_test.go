package main

import (
	"os"
	"testing"
)

func TestScore(t *testing.T) {
	expected := map[string]bool{"a": true, "b": true}
	tests := []struct {
		desc    string
		focus   string
		results []result
		want    int
	}{
		{desc: "all expected pass, one newly passing", results: []result{{"a", passed}, {"b", passed}, {"c", passed}}, want: 0},
		{desc: "an expected spec fails", results: []result{{"a", passed}, {"b", failed}}, want: 1},
		{desc: "an expected spec is skipped", results: []result{{"a", passed}, {"b", skipped}}, want: 1},
		{desc: "an expected spec is missing", results: []result{{"a", passed}}, want: 1},
		{desc: "an unexpected spec fails", results: []result{{"a", passed}, {"b", passed}, {"c", failed}}, want: 0},
		{desc: "focused run: expected specs outside the focus are skipped or absent", focus: "c",
			results: []result{{"a", skipped}, {"c", passed}}, want: 0},
		{desc: "focused run: an expected spec inside the focus fails", focus: "a",
			results: []result{{"a", failed}}, want: 1},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			t.Setenv("CRITEST_FOCUS", test.focus)
			if got := score(test.results, expected, nil); got != test.want {
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
	if _, err := readSkips(write("spec without reason\n")); err == nil {
		t.Error("a skip without a reason was accepted")
	}
	skips, err := readSkips(write("# comment\nsome spec # needs a fixed public digest\n"))
	if err != nil || len(skips) != 1 || skips[0].spec != "some spec" || skips[0].reason != "needs a fixed public digest" {
		t.Errorf("readSkips = %+v, %v", skips, err)
	}
}

func writeString(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
