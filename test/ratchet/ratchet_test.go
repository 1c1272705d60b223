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

// A spec that ginkgo's suite timeout cut off did not run to its end: skipped, not failed (found
// by make vm-test, whose critest is time-bound); a spec's own timeout is a failure.
func TestReadReportOutcomes(t *testing.T) {
	report := `<testsuites><testsuite>
<testcase name="[BeforeSuite]" status="passed"></testcase>
<testcase name="[It] passes" status="passed"></testcase>
<testcase name="[It] fails" status="failed"><failure message="boom" type="failed">x</failure></testcase>
<testcase name="[It] is skipped" status="skipped"><skipped message="skipped"></skipped></testcase>
<testcase name="[It] is cut off" status="timedout"><failure message="A suite timeout occurred" type="timedout">x</failure></testcase>
<testcase name="[It] times out itself" status="timedout"><failure message="A spec timeout occurred" type="timedout">x</failure></testcase>
</testsuite></testsuites>`
	p := t.TempDir() + "/report.xml"
	if err := writeString(p, report); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{{"passes", Passed}, {"fails", Failed}, {"is skipped", Skipped}, {"is cut off", Skipped}, {"times out itself", Failed}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("spec %d: got %v, want %v", i, got[i], want[i])
		}
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
