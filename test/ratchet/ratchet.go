// Package ratchet keeps score of a ginkgo conformance suite (critest, Kubernetes' node e2e):
// it reads the suite's JUnit report, the specs expected to pass and the specs skipped on purpose
// (each with its reason), and fails a run in which an expected spec did not pass.
package ratchet

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Outcomes of a spec.
const (
	Passed  = "passed"
	Failed  = "failed"
	Skipped = "skipped"
)

// Result is one spec's outcome in critest's JUnit report.
type Result struct {
	Name    string
	Outcome string
}

type junitReport struct {
	Suites []struct {
		Cases []struct {
			Name    string `xml:"name,attr"`
			Status  string `xml:"status,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
			Error   *struct{} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// suiteTimeout is ginkgo's failure message for the spec in flight when -ginkgo.timeout ends
// the suite.
const suiteTimeout = "A suite timeout occurred"

// readReport reads the specs of a ginkgo JUnit report, leaving out the suite set-up nodes.
func ReadReport(path string) ([]Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r junitReport
	if err := xml.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse report %s: %w", path, err)
	}
	var out []Result
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			name, ok := strings.CutPrefix(c.Name, "[It] ")
			if !ok {
				continue // [BeforeSuite], [SynchronizedBeforeSuite] and the like
			}
			res := Result{Name: name, Outcome: Passed}
			switch {
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				res.Outcome = Skipped
			case c.Status == "timedout" && c.Failure != nil && c.Failure.Message == suiteTimeout:
				// Cut off by the run's own time bound (make vm-test bounds critest), not
				// failed: it did not run to its end.
				res.Outcome = Skipped
			case c.Failure != nil || c.Error != nil || (c.Status != "" && c.Status != "passed"):
				res.Outcome = Failed
			}
			out = append(out, res)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("report %s holds no specs", path)
	}
	return out, nil
}

// Skip is a line of skip.txt: a spec skipped on purpose, with the reason.
type Skip struct{ Spec, Reason string }

// ReadSkips reads skip.txt: one spec per line, then " # " and why it is skipped. A line without a
// reason is an error: nothing is skipped without one.
func ReadSkips(path string) ([]Skip, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	var out []Skip
	for i, l := range lines {
		spec, reason, ok := strings.Cut(l, " # ")
		if !ok || strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%s:%d: a skipped spec needs its reason after \" # \"", path, i+1)
		}
		out = append(out, Skip{strings.TrimSpace(spec), strings.TrimSpace(reason)})
	}
	return out, nil
}

// ReadExpected reads expected-pass.txt: one spec per line.
func ReadExpected(path string) (map[string]bool, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, l := range lines {
		m[l] = true
	}
	return m, nil
}

// readLines returns the non-empty lines of a file that are not comments (#).
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		l := strings.TrimSpace(s.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out, s.Err()
}

// Score prints the summary of suite's run to w and returns the exit code: 1 when a spec expected
// to pass did not. A focused run (only some specs) does not count expected specs it left out.
func Score(w io.Writer, suite string, results []Result, expected map[string]bool, skips []Skip, focused bool) int {
	counts := map[string]int{}
	expectedPassed := 0
	var failedNames, newlyPassing, regressions []string
	seen := map[string]bool{}
	for _, r := range results {
		counts[r.Outcome]++
		seen[r.Name] = true
		if r.Outcome == Passed && expected[r.Name] {
			expectedPassed++
		}
		switch {
		case r.Outcome == Failed:
			failedNames = append(failedNames, r.Name)
			if expected[r.Name] {
				regressions = append(regressions, r.Name)
			}
		case r.Outcome == Passed && !expected[r.Name]:
			newlyPassing = append(newlyPassing, r.Name)
		case r.Outcome == Skipped && expected[r.Name] && !focused:
			regressions = append(regressions, r.Name+" (skipped)")
		}
	}
	for name := range expected {
		if !seen[name] && !focused {
			regressions = append(regressions, name+" (not run)")
		}
	}
	sort.Strings(failedNames)
	sort.Strings(newlyPassing)
	sort.Strings(regressions)
	for _, n := range failedNames {
		fmt.Fprintf(w, "%s: FAILED: %s\n", suite, n)
	}
	for _, n := range newlyPassing {
		fmt.Fprintf(w, "%s: newly passing, add it to expected-pass.txt: %s\n", suite, n)
	}
	for _, n := range regressions {
		fmt.Fprintf(w, "%s: REGRESSION, expected to pass: %s\n", suite, n)
	}
	fmt.Fprintf(w, "%s: %d passed, %d failed, %d skipped (%d skipped on purpose in skip.txt)\n",
		suite, counts[Passed], counts[Failed], counts[Skipped], len(skips))
	fmt.Fprintf(w, "%s ratchet: %d passed, %d failed\n", suite, expectedPassed, len(regressions))
	if len(regressions) > 0 {
		return 1
	}
	return 0
}

// SpecText is a spec's text as ginkgo's --skip matches it: its name in the JUnit report without
// the labels the report appends ("[sig-node, NodeConformance]").
func SpecText(name string) string {
	if i := strings.LastIndex(name, " ["); i >= 0 && strings.HasSuffix(name, "]") && strings.Contains(name[i:], ", ") {
		return name[:i]
	}
	return name
}
