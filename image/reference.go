// Package image is berth's ImageService: it pulls images through containerd (with registry
// mirrors, TLS settings and credentials from a hosts.toml directory), and lists, describes and
// removes them with the names and ids the kubelet expects.
package image

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Normalize turns a user's image reference into its full form: `busybox` becomes
// `docker.io/library/busybox:latest`; a reference with a digest keeps the digest (and drops a tag
// given with it, since the digest decides what is pulled). A bad reference is InvalidArgument.
func Normalize(ref string) (reference.Named, error) {
	if ref == "" {
		return nil, fmt.Errorf("image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q is not valid: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	return named, nil
}

// asID returns the image id ref stands for when ref is an image id ("sha256:<hex>" or the bare
// 64-character hex), and false otherwise.
func asID(ref string) (digest.Digest, bool) {
	if d, err := digest.Parse(ref); err == nil {
		return d, true
	}
	if len(ref) == 64 && strings.Trim(ref, "0123456789abcdef") == "" {
		return digest.NewDigestFromEncoded(digest.SHA256, ref), true
	}
	return "", false
}

// names sorts an image's record names into the CRI's repo tags and repo digests; the record
// named by the id itself is neither.
func names(id digest.Digest, records []string) (tags, digests []string) {
	for _, n := range records {
		if n == id.String() {
			continue
		}
		named, err := reference.ParseNamed(n)
		if err != nil {
			continue
		}
		if _, ok := named.(reference.Digested); ok {
			digests = append(digests, n)
		} else {
			tags = append(tags, n)
		}
	}
	return tags, digests
}

// UserOf splits an image config's USER ("uid", "name", "uid:group" or "name:group") into the uid
// or the user name the CRI reports.
func UserOf(user string) (uid *int64, username string) {
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		return nil, ""
	}
	// As the kubelet and containerd read it: a number is a uid, anything else a name.
	if n, err := strconv.ParseInt(u, 10, 64); err == nil {
		return &n, ""
	}
	return nil, u
}
