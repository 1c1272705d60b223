// Command security runs make security: the advisory tests of test/e2e (TestAdvisory*), each of
// which replays one or more of the peers' security advisories against a real berthd and checks
// the node for the harm it did to them, with the stream abuse at BERTH_STREAM_ABUSE rounds
// (1000 unless set). It keeps score as the other suites do: every test in expected-pass.txt
// must pass. It prints "security: N passed, N failed, N skipped"; a failed test's output is
// printed in full, a passing one's log lines (what it measured).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/berth-runtime/berth/test/daemon"
	"github.com/berth-runtime/berth/test/images"
	"github.com/berth-runtime/berth/test/ratchet"
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "security:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// event is one line of go test -json.
type event struct {
	Action, Test, Output string
}

func run() (int, error) {
	moduleDir, err := images.ModuleRoot()
	if err != nil {
		return 0, err
	}
	expected, err := ratchet.ReadExpected(filepath.Join(moduleDir, "test", "security", "expected-pass.txt"))
	if err != nil {
		return 0, err
	}
	cmd := exec.Command("go", "test", "-count=1", "-json", "-timeout=60m", "-run=^TestAdvisory", "./test/e2e/")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "BERTH_E2E=1", "BERTH_STREAM_ABUSE="+daemon.EnvOr("BERTH_STREAM_ABUSE", "1000"))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	results, err := read(out, os.Stdout)
	werr := cmd.Wait()
	if err != nil {
		return 0, err
	}
	if len(results) == 0 {
		return 0, fmt.Errorf("no advisory test ran: %v", werr)
	}
	return ratchet.Score(os.Stdout, "security", results, expected, nil, false), nil
}

// read follows go test -json: each top-level test's outcome, a line as each ends, and the
// whole output of those that failed.
func read(r io.Reader, w io.Writer) ([]ratchet.Result, error) {
	var results []ratchet.Result
	output := map[string]*strings.Builder{}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 1<<20), 16<<20)
	for s.Scan() {
		var e event
		if json.Unmarshal(s.Bytes(), &e) != nil || e.Test == "" || strings.Contains(e.Test, "/") {
			continue
		}
		switch e.Action {
		case "output":
			if output[e.Test] == nil {
				output[e.Test] = &strings.Builder{}
			}
			output[e.Test].WriteString(e.Output)
		case "pass", "fail", "skip":
			outcome := map[string]string{"pass": ratchet.Passed, "fail": ratchet.Failed, "skip": ratchet.Skipped}[e.Action]
			results = append(results, ratchet.Result{Name: e.Test, Outcome: outcome})
			fmt.Fprintf(w, "security: %s %s\n", e.Action, e.Test)
			if out := output[e.Test]; out != nil {
				if e.Action == "fail" {
					fmt.Fprint(w, out.String())
				} else {
					// What a passing test measured (its t.Log lines): the evidence.
					for _, line := range strings.Split(out.String(), "\n") {
						if strings.Contains(line, "_test.go:") {
							fmt.Fprintf(w, "security:   %s\n", strings.TrimSpace(line))
						}
					}
				}
			}
			delete(output, e.Test)
		}
	}
	return results, s.Err()
}
