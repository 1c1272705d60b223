package parity

import (
	"path"
	"regexp"
	"strings"
)

// Normalizer rewrites what must differ between two runtimes running the same request: the ids
// they chose, the directories they keep their state in, and the paths of namespaces they pinned.
type Normalizer struct {
	r *strings.Replacer
}

// NewNormalizer replaces each old string of pairs (old, new, old, new, ...) by its new one; the
// longest first, so that an id inside a path is replaced with the path.
func NewNormalizer(pairs ...string) Normalizer {
	return Normalizer{strings.NewReplacer(pairs...)}
}

// rootPath is a path under a runtime's own directories, after Replace made its start "<root>".
var rootPath = regexp.MustCompile(`<root>[^"\s,]*`)

// nsPath is a namespace file: a pinned one, or a process's.
var nsPath = regexp.MustCompile(`^"(/proc/[0-9]+/ns/[a-z_]+|[^"]*<root>[^"]*|/var/run/netns/[^"]+|/run/netns/[^"]+)"$`)

// digest is a name made of a sha256 (an image id, a volume's).
var digest = regexp.MustCompile(`^(sha256:)?[0-9a-f]{64}$`)

// String normalises one value: ids and runtime directories replaced, and a path under a runtime
// directory reduced to its last element (a digest to "<digest>"), since each runtime lays its
// own tree out.
func (n Normalizer) String(s string) string {
	s = n.r.Replace(s)
	return rootPath.ReplaceAllStringFunc(s, func(p string) string {
		base := path.Base(p)
		if digest.MatchString(base) {
			base = "<digest>"
		}
		return "<root>/…/" + base
	})
}

// Fields normalises keys and values; a namespace path becomes "<path>": whether a container joins a
// namespace matters, not where the runtime pinned it.
func (n Normalizer) Fields(f Fields) Fields {
	out := Fields{}
	for k, v := range f {
		k = n.String(k)
		if strings.HasPrefix(k, "linux.namespaces[") && strings.HasSuffix(k, "].path") && nsPath.MatchString(n.r.Replace(v)) {
			out[k] = `"<path>"`
			continue
		}
		out[k] = n.String(v)
	}
	return out
}
