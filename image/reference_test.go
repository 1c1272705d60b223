package image

import (
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

const hexID = "9700f9a2f5bf2c45f2f605a0bd3bce7cf37420ec9d3ed50ac2758413308766bf"

func TestNormalize(t *testing.T) {
	tests := []struct {
		desc, in, want string
		invalid        bool
	}{
		{desc: "short name", in: "busybox", want: "docker.io/library/busybox:latest"},
		{desc: "short name with tag", in: "busybox:1.37", want: "docker.io/library/busybox:1.37"},
		{desc: "user repository", in: "someone/app", want: "docker.io/someone/app:latest"},
		{desc: "other registry", in: "registry.k8s.io/e2e-test-images/busybox:1.29-2", want: "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
		{desc: "registry with port", in: "127.0.0.1:5000/x", want: "127.0.0.1:5000/x:latest"},
		{desc: "digest", in: "busybox@sha256:" + hexID, want: "docker.io/library/busybox@sha256:" + hexID},
		{desc: "tag and digest: the digest decides", in: "busybox:1.0@sha256:" + hexID, want: "docker.io/library/busybox@sha256:" + hexID},
		{desc: "empty", in: "", invalid: true},
		{desc: "upper case", in: "BusyBox", invalid: true},
		{desc: "bad digest", in: "busybox@sha256:123", invalid: true},
		{desc: "spaces", in: "busy box", invalid: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			got, err := Normalize(test.in)
			if test.invalid {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("Normalize(%q) error = %v, want InvalidArgument", test.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize(%q): %v", test.in, err)
			}
			if got.String() != test.want {
				t.Errorf("Normalize(%q) = %q, want %q", test.in, got, test.want)
			}
		})
	}
}

func TestAsID(t *testing.T) {
	tests := []struct {
		in   string
		want digest.Digest
		ok   bool
	}{
		{"sha256:" + hexID, digest.Digest("sha256:" + hexID), true},
		{hexID, digest.Digest("sha256:" + hexID), true},
		{"busybox", "", false},
		{hexID[:12], "", false},
		{"docker.io/library/busybox@sha256:" + hexID, "", false},
	}
	for _, test := range tests {
		got, ok := asID(test.in)
		if got != test.want || ok != test.ok {
			t.Errorf("asID(%q) = %q, %v; want %q, %v", test.in, got, ok, test.want, test.ok)
		}
	}
}

func TestNames(t *testing.T) {
	id := digest.Digest("sha256:" + hexID)
	tags, digests := names(id, []string{
		"docker.io/library/busybox:latest",
		"docker.io/library/busybox@sha256:" + hexID,
		id.String(),
		"docker.io/library/busybox:1.37",
	})
	if want := []string{"docker.io/library/busybox:latest", "docker.io/library/busybox:1.37"}; !reflect.DeepEqual(tags, want) {
		t.Errorf("tags = %v, want %v", tags, want)
	}
	if want := []string{"docker.io/library/busybox@sha256:" + hexID}; !reflect.DeepEqual(digests, want) {
		t.Errorf("digests = %v, want %v", digests, want)
	}
}

func TestUserOf(t *testing.T) {
	i := func(n int64) *int64 { return &n }
	tests := []struct {
		user     string
		uid      *int64
		username string
	}{
		{"", nil, ""},
		{"1002", i(1002), ""},
		{"0", i(0), ""},
		{"www-data", nil, "www-data"},
		{"1003:users", i(1003), ""},
		{"www-data:users", nil, "www-data"},
		{"007", i(7), ""},
	}
	for _, test := range tests {
		uid, name := UserOf(test.user)
		if !reflect.DeepEqual(uid, test.uid) || name != test.username {
			t.Errorf("UserOf(%q) = %v, %q; want %v, %q", test.user, uid, name, test.uid, test.username)
		}
	}
}
