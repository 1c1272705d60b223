package main

import (
	"regexp"
	"strings"
	"time"
)

// stepLine matches berthd's debug lines that time the steps of a pod's start:
// msg="pod sandbox ready" (RunPodSandbox), "container created", "container started".
var stepLine = regexp.MustCompile(`msg="(pod sandbox ready|container created|container started)".* (?:sandbox|container)=([0-9a-f]{64}) .*steps="([^"]*)"`)

// stepTimes reads the step times of the pods and containers ids from berthd's log: per message,
// per step, one duration for each id found.
func stepTimes(log string, ids map[string]bool) map[string]map[string][]time.Duration {
	out := map[string]map[string][]time.Duration{}
	for _, line := range strings.Split(log, "\n") {
		m := stepLine.FindStringSubmatch(line)
		if m == nil || !ids[m[2]] {
			continue
		}
		if out[m[1]] == nil {
			out[m[1]] = map[string][]time.Duration{}
		}
		for _, kv := range strings.Fields(m[3]) {
			k, v, ok := strings.Cut(kv, "=")
			if d, err := time.ParseDuration(v); ok && err == nil {
				out[m[1]][k] = append(out[m[1]][k], d)
			}
		}
	}
	return out
}

// step is one part of berth's time to RUNNING, at the median over the pods measured.
type step struct {
	Name string        `json:"name"`
	P50  time.Duration `json:"p50_ns"`
}

// overheadByStep splits berth's time to RUNNING of pods (with their lifecycles lcs, as the
// bench timed them) into the steps berthd's debug log times, each RPC's time outside its steps
// (gRPC, validation, locks), and sets the floor beside the steps that contain it.
func overheadByStep(log string, pods []pod, lcs []lifecycle, fl floor) []step {
	ids := map[string]bool{}
	for _, p := range pods {
		ids[p.id] = true
	}
	times := stepTimes(log, ids)
	var out []step
	for _, rpc := range []struct {
		name, msg string
		steps     []string
		total     func(lifecycle) time.Duration
	}{
		{"RunPodSandbox", "pod sandbox ready", []string{"record", "namespaces", "cni", "files", "infra", "save"}, func(l lifecycle) time.Duration { return l.run }},
		{"CreateContainer", "container created", []string{"image", "snapshot", "users", "spec", "record"}, func(l lifecycle) time.Duration { return l.create }},
		{"StartContainer", "container started", []string{"io", "create", "start", "save"}, func(l lifecycle) time.Duration { return l.start }},
	} {
		var sum time.Duration
		for _, name := range rpc.steps {
			if len(times[rpc.msg][name]) == 0 {
				continue // a step these pods do not take
			}
			p := percentile(times[rpc.msg][name], 50)
			sum += p
			out = append(out, step{rpc.name + ": " + name, p})
		}
		out = append(out, step{rpc.name + ": outside its steps (gRPC, checks)", percentile(durations(lcs, rpc.total), 50) - sum})
	}
	out = append(out,
		step{"floor inside RunPodSandbox's cni step: CNI ADD alone", percentile(fl.cniAdd, 50)},
		step{"floor inside StartContainer's create step: runc create alone", percentile(fl.runcCreate, 50)},
		step{"floor inside StartContainer's start step: runc start alone", percentile(fl.runcStart, 50)},
		step{"floor inside StartContainer's create step: the shim's task create alone", percentile(fl.taskCreate, 50)},
		step{"floor inside StartContainer's start step: the shim's task start alone", percentile(fl.taskStart, 50)},
		step{"floor inside CreateContainer's snapshot and record steps: containerd's alone", percentile(fl.ctrdRecord, 50)},
		step{"floor inside StartContainer's create step: containerd's task create alone", percentile(fl.ctrdCreate, 50)},
		step{"floor inside StartContainer's start step: containerd's task start alone", percentile(fl.ctrdStart, 50)},
	)
	return out
}
