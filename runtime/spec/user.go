package spec

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/user"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type identity struct {
	uid, gid uint32
	groups   []uint32
}

// resolveUser works out who the process runs as: the security context's run_as_user or
// run_as_username (looked up in the image's /etc/passwd), else the image's USER; its group from
// run_as_group, else the user's entry; and its supplementary groups: with the Merge policy (the
// default) the image's /etc/group memberships plus the configured ones, with Strict only the
// configured ones.
func resolveUser(in Input) (identity, error) {
	sc := in.Config.GetLinux().GetSecurityContext()
	passwd, err := user.ParsePasswd(bytes.NewReader(in.Passwd))
	if err != nil {
		passwd = nil
	}
	groups, err := user.ParseGroup(bytes.NewReader(in.Group))
	if err != nil {
		groups = nil
	}
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return identity{}, fmt.Errorf("security_context.run_as_group: set without run_as_user or run_as_username: %w", errdefs.ErrInvalidArgument)
	}

	var id identity
	var name string
	var groupSpec string
	switch {
	case sc.GetRunAsUser() != nil:
		uid := sc.GetRunAsUser().GetValue()
		if uid < 0 || uid > maxID {
			return identity{}, fmt.Errorf("security_context.run_as_user: %d is not a valid uid: %w", uid, errdefs.ErrInvalidArgument)
		}
		id.uid = uint32(uid)
	case sc.GetRunAsUsername() != "":
		name = sc.GetRunAsUsername()
		u, ok := findUser(passwd, func(u user.User) bool { return u.Name == name })
		if !ok {
			return identity{}, fmt.Errorf("security_context.run_as_username: user %q is not in the image's /etc/passwd: %w", name, errdefs.ErrInvalidArgument)
		}
		id.uid = uint32(u.Uid)
	default:
		userSpec := in.Image.User
		var u string
		u, groupSpec, _ = strings.Cut(userSpec, ":")
		if u != "" {
			if numeric(u) {
				n, err := parseID(u)
				if err != nil {
					return identity{}, fmt.Errorf("image user %q: %v: %w", userSpec, err, errdefs.ErrInvalidArgument)
				}
				id.uid = n
			} else {
				found, ok := findUser(passwd, func(x user.User) bool { return x.Name == u })
				if !ok {
					return identity{}, fmt.Errorf("image user %q is not in the image's /etc/passwd: %w", u, errdefs.ErrFailedPrecondition)
				}
				id.uid, name = uint32(found.Uid), u
			}
		}
	}

	// The primary group: run_as_group, else the image's USER group, else the user's entry, else 0.
	entry, hasEntry := findUser(passwd, func(u user.User) bool { return uint32(u.Uid) == id.uid })
	if hasEntry && name == "" {
		name = entry.Name
	}
	switch {
	case sc.GetRunAsGroup() != nil:
		gid := sc.GetRunAsGroup().GetValue()
		if gid < 0 || gid > maxID {
			return identity{}, fmt.Errorf("security_context.run_as_group: %d is not a valid gid: %w", gid, errdefs.ErrInvalidArgument)
		}
		id.gid = uint32(gid)
	case groupSpec != "":
		if numeric(groupSpec) {
			n, err := parseID(groupSpec)
			if err != nil {
				return identity{}, fmt.Errorf("image group %q: %v: %w", in.Image.User, err, errdefs.ErrInvalidArgument)
			}
			id.gid = n
		} else if g, ok := findGroup(groups, func(g user.Group) bool { return g.Name == groupSpec }); ok {
			id.gid = uint32(g.Gid)
		} else {
			return identity{}, fmt.Errorf("image group %q is not in the image's /etc/group: %w", groupSpec, errdefs.ErrFailedPrecondition)
		}
	case hasEntry:
		id.gid = uint32(entry.Gid)
	}

	add := func(g uint32) {
		if !slices.Contains(id.groups, g) {
			id.groups = append(id.groups, g)
		}
	}
	// The primary group is always one of the process's groups (GHSA-hmfx-3pcx-653p); then,
	// with the Merge policy, the groups /etc/group lists the user in. The group of the user's
	// /etc/passwd entry is not added when another primary group was asked for, as in containerd.
	add(id.gid)
	if sc.GetSupplementalGroupsPolicy() != runtimeapi.SupplementalGroupsPolicy_Strict && name != "" {
		for _, g := range groups {
			if g.Name != name && slices.Contains(g.List, name) {
				add(uint32(g.Gid))
			}
		}
	}
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > maxID {
			return identity{}, fmt.Errorf("security_context.supplemental_groups: %d is not a valid gid: %w", g, errdefs.ErrInvalidArgument)
		}
		add(uint32(g))
	}
	slices.Sort(id.groups)
	return id, nil
}

// maxID is the largest uid or gid a container may run as: runc refuses more than 2^31-1, though
// the kernel allows 2^32-2 (containerd holds the same limit).
const maxID = math.MaxInt32

// numeric reports whether an image's user or group is a number (with a sign, so that "-1" is a
// bad number rather than a name): then it is an id, never looked up as a name.
func numeric(s string) bool {
	s = strings.TrimPrefix(s, "-")
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// parseID parses a numeric user or group of an image as an id of at most maxID.
func parseID(s string) (uint32, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > maxID {
		return 0, fmt.Errorf("%s is not an id from 0 to %d", s, maxID)
	}
	return uint32(n), nil
}

func findUser(users []user.User, match func(user.User) bool) (user.User, bool) {
	for _, u := range users {
		if match(u) {
			return u, true
		}
	}
	return user.User{}, false
}

func findGroup(groups []user.Group, match func(user.Group) bool) (user.Group, bool) {
	for _, g := range groups {
		if match(g) {
			return g, true
		}
	}
	return user.Group{}, false
}

func withUser(id identity) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.User.UID = id.uid
		s.Process.User.GID = id.gid
		s.Process.User.AdditionalGids = slices.Clone(id.groups)
		return nil
	}
}
