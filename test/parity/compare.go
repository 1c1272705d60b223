// Package parity is the differential test of berth against containerd's own CRI plugin: the same
// kubelet-shaped requests go to both, and the OCI specs they make, what the containers' processes
// see and what ContainerStatus says are compared field by field. A difference fails the test
// unless intended.txt lists it with its reason. This file holds the comparison: flattening specs
// and views into keyed fields, normalising what must differ (ids, paths), and the intended list.
package parity

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Fields is a flattened document: a dotted key per leaf ("process.user.uid",
// "mounts[/dev/shm].options") and its value as JSON text.
type Fields map[string]string

// keyedArrays name the arrays whose items are matched by a field of theirs rather than by
// position, so that order and an extra item show as the one field that differs.
var keyedArrays = map[string]string{
	"mounts":           "destination",
	"linux.namespaces": "type",
	"linux.devices":    "path",
	"process.rlimits":  "type",
	// ContainerStatus's.
	"status.mounts": "container_path",
}

// setArrays are arrays of scalars whose order means nothing: compared sorted.
var setArrays = []string{
	"process.capabilities.bounding", "process.capabilities.effective", "process.capabilities.inheritable",
	"process.capabilities.permitted", "process.capabilities.ambient", "process.user.additionalGids",
	"linux.maskedPaths", "linux.readonlyPaths", ".options",
}

// Flatten turns a JSON-marshallable value into Fields. Objects become dotted keys; arrays of
// objects listed in keyedArrays become "path[key]" items; process.env becomes one key per
// variable; other arrays are one field, sorted when listed in setArrays.
func Flatten(v any) (Fields, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	out := Fields{}
	flatten(out, "", doc)
	return out, nil
}

func flatten(out Fields, path string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			flatten(out, join(path, k), val)
		}
	case []any:
		if path == "process.env" {
			for _, e := range x {
				s, _ := e.(string)
				k, val, _ := strings.Cut(s, "=")
				out["process.env["+k+"]"] = quote(val)
			}
			return
		}
		if field, ok := keyedArrays[path]; ok {
			for _, item := range x {
				m, ok := item.(map[string]any)
				if !ok {
					continue
				}
				key := fmt.Sprint(m[field])
				for k, val := range m {
					if k != field {
						flatten(out, fmt.Sprintf("%s[%s].%s", path, key, k), val)
					}
				}
				if len(m) == 1 {
					out[fmt.Sprintf("%s[%s]", path, key)] = "present"
				}
			}
			return
		}
		if len(x) == 0 {
			return // an empty list says what an absent one does
		}
		if isSet(path) {
			items := make([]string, len(x))
			for i, item := range x {
				items[i] = quote(item)
			}
			sort.Strings(items)
			out[path] = "[" + strings.Join(items, ",") + "]"
			return
		}
		out[path] = quote(x)
	case nil:
		// absent and null are the same
	case bool:
		if x {
			out[path] = "true"
		}
	case float64:
		out[path] = quote(x)
	case string:
		if x != "" {
			out[path] = quote(x)
		}
	default:
		out[path] = quote(x)
	}
}

func isSet(path string) bool {
	return slices.ContainsFunc(setArrays, func(s string) bool {
		return path == s || (strings.HasPrefix(s, ".") && strings.HasSuffix(path, s))
	})
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func quote(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Difference is one field that the two runtimes disagree on; a missing side is "".
type Difference struct {
	Key               string
	Berth, Containerd string
}

func (d Difference) String() string {
	show := func(s string) string {
		if s == "" {
			return "(absent)"
		}
		if len(s) > 1200 {
			return s[:1200] + "…"
		}
		return s
	}
	return fmt.Sprintf("%s: berth %s, containerd %s", d.Key, show(d.Berth), show(d.Containerd))
}

// Diff lists the keys whose values differ, sorted, each key prefixed with prefix.
func Diff(prefix string, berth, containerd Fields) []Difference {
	var out []Difference
	for k, v := range berth {
		if containerd[k] != v {
			out = append(out, Difference{prefix + k, v, containerd[k]})
		}
	}
	for k, v := range containerd {
		if _, ok := berth[k]; !ok {
			out = append(out, Difference{prefix + k, "", v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Intended is the list of differences kept on purpose, each with its reason.
type Intended struct {
	Entries []IntendedEntry
}

// IntendedEntry matches difference keys ("case/kind/field") by a glob in which * matches any
// run of characters.
type IntendedEntry struct {
	Glob, Reason string
	Line         int
	re           *regexp.Regexp
	// Used counts the differences it matched.
	Used int
}

// ReadIntended reads a list: one entry a line, the glob, white space and the reason; # starts a
// comment. An entry without a reason is an error.
func ReadIntended(path string) (*Intended, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	in := &Intended{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		glob, reason, _ := strings.Cut(line, " ")
		reason = strings.TrimSpace(reason)
		if reason == "" {
			return nil, fmt.Errorf("%s:%d: %q has no reason", path, n, glob)
		}
		in.Entries = append(in.Entries, IntendedEntry{Glob: glob, Reason: reason, Line: n, re: globRegexp(glob)})
	}
	return in, sc.Err()
}

func globRegexp(glob string) *regexp.Regexp {
	parts := strings.Split(glob, "*")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

// Match returns the entry that keeps d, or nil.
func (in *Intended) Match(d Difference) *IntendedEntry {
	for i := range in.Entries {
		if in.Entries[i].re.MatchString(d.Key) {
			in.Entries[i].Used++
			return &in.Entries[i]
		}
	}
	return nil
}
