package main

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Outcomes of a spec.
const (
	passed  = "passed"
	failed  = "failed"
	skipped = "skipped"
)

// result is one spec's outcome in critest's JUnit report.
type result struct {
	name    string
	outcome string
}

type junitReport struct {
	Suites []struct {
		Cases []struct {
			Name    string    `xml:"name,attr"`
			Status  string    `xml:"status,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// readReport reads the specs of a ginkgo JUnit report, leaving out the suite set-up nodes.
func readReport(path string) ([]result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read critest report: %w", err)
	}
	var r junitReport
	if err := xml.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse critest report %s: %w", path, err)
	}
	var out []result
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			name, ok := strings.CutPrefix(c.Name, "[It] ")
			if !ok {
				continue // [BeforeSuite], [SynchronizedBeforeSuite] and the like
			}
			res := result{name: name, outcome: passed}
			switch {
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				res.outcome = skipped
			case c.Failure != nil || c.Error != nil || (c.Status != "" && c.Status != "passed"):
				res.outcome = failed
			}
			out = append(out, res)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("critest report %s holds no specs", path)
	}
	return out, nil
}

// skip is a line of skip.txt: a spec skipped on purpose, with the reason.
type skip struct{ spec, reason string }

// readSkips reads skip.txt: one spec per line, then " # " and why it is skipped. A line without a
// reason is an error: nothing is skipped without one.
func readSkips(path string) ([]skip, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, err
	}
	var out []skip
	for i, l := range lines {
		spec, reason, ok := strings.Cut(l, " # ")
		if !ok || strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%s:%d: a skipped spec needs its reason after \" # \"", path, i+1)
		}
		out = append(out, skip{strings.TrimSpace(spec), strings.TrimSpace(reason)})
	}
	return out, nil
}

func readExpected(path string) (map[string]bool, error) {
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
	for s.Scan() {
		l := strings.TrimSpace(s.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out, s.Err()
}

// score prints the summary and returns the exit code: 1 when a spec expected to pass did not.
func score(results []result, expected map[string]bool, skips []skip) int {
	counts := map[string]int{}
	expectedPassed := 0
	var failedNames, newlyPassing, regressions []string
	seen := map[string]bool{}
	for _, r := range results {
		counts[r.outcome]++
		seen[r.name] = true
		if r.outcome == passed && expected[r.name] {
			expectedPassed++
		}
		switch {
		case r.outcome == failed:
			failedNames = append(failedNames, r.name)
			if expected[r.name] {
				regressions = append(regressions, r.name)
			}
		case r.outcome == passed && !expected[r.name]:
			newlyPassing = append(newlyPassing, r.name)
		case r.outcome == skipped && expected[r.name] && !focused():
			regressions = append(regressions, r.name+" (skipped)")
		}
	}
	for name := range expected {
		if !seen[name] && !focused() {
			regressions = append(regressions, name+" (not run)")
		}
	}
	sort.Strings(failedNames)
	sort.Strings(newlyPassing)
	sort.Strings(regressions)
	for _, n := range failedNames {
		fmt.Println("critest: FAILED:", n)
	}
	for _, n := range newlyPassing {
		fmt.Println("critest: newly passing, add it to expected-pass.txt:", n)
	}
	for _, n := range regressions {
		fmt.Println("critest: REGRESSION, expected to pass:", n)
	}
	fmt.Printf("critest: %d passed, %d failed, %d skipped (%d skipped on purpose in skip.txt)\n",
		counts[passed], counts[failed], counts[skipped], len(skips))
	fmt.Printf("conformance ratchet: %d passed, %d failed\n", expectedPassed, len(regressions))
	if len(regressions) > 0 {
		return 1
	}
	return 0
}

func focused() bool { return os.Getenv("CRITEST_FOCUS") != "" }
