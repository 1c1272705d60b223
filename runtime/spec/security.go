package spec

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultCapabilities are what a container gets unless its config says otherwise: containerd's
// (and Docker's) default set.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func capName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// capabilities works out the capability set: the defaults, or everything berthd holds for
// "ALL" (added) and privileged containers, or nothing for "ALL" (dropped); then single adds and
// drops. Whatever berthd does not hold itself is left out: it cannot give it.
func capabilities(in Input) []string {
	sc := in.Config.GetLinux().GetSecurityContext()
	held := in.Settings.Capabilities
	caps := slices.Clone(defaultCapabilities)
	add, drop := sc.GetCapabilities().GetAddCapabilities(), sc.GetCapabilities().GetDropCapabilities()
	if sc.GetPrivileged() || slices.ContainsFunc(add, func(c string) bool { return strings.EqualFold(c, "ALL") }) {
		caps = slices.Clone(held)
	}
	if slices.ContainsFunc(drop, func(c string) bool { return strings.EqualFold(c, "ALL") }) {
		caps = nil
	}
	for _, c := range add {
		if c = capName(c); c != "CAP_ALL" && !slices.Contains(caps, c) {
			caps = append(caps, c)
		}
	}
	for _, c := range drop {
		c = capName(c)
		caps = slices.DeleteFunc(caps, func(x string) bool { return x == c })
	}
	return slices.DeleteFunc(caps, func(c string) bool { return !slices.Contains(held, c) })
}

// withSecurity applies the security context: privileged mode, capabilities, no_new_privs,
// masked and read-only paths, seccomp and AppArmor.
func withSecurity(in Input) oci.SpecOpts {
	return func(ctx context.Context, c oci.Client, ctr *containers.Container, s *oci.Spec) error {
		sc := in.Config.GetLinux().GetSecurityContext()
		privileged := sc.GetPrivileged()
		if privileged && !in.Sandbox.Config.GetLinux().GetSecurityContext().GetPrivileged() {
			return fmt.Errorf("security_context.privileged: the pod is not privileged: %w", errdefs.ErrInvalidArgument)
		}
		caps := capabilities(in)
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
		s.Process.NoNewPrivileges = sc.GetNoNewPrivs()

		if privileged {
			s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
			for i, m := range s.Mounts {
				if m.Type == "sysfs" || m.Type == "cgroup" {
					opts := slices.Clone(m.Options)
					for j, o := range opts {
						if o == "ro" {
							opts[j] = "rw"
						}
					}
					s.Mounts[i].Options = opts
				}
			}
			if err := oci.WithHostDevices(ctx, c, ctr, s); err != nil {
				return err
			}
			if err := oci.WithAllDevicesAllowed(ctx, c, ctr, s); err != nil {
				return err
			}
			return nil // no seccomp, no AppArmor
		}
		// Exactly the paths asked for: the kubelet sends its defaults for procMount Default and
		// none for Unmasked, and an empty list cannot be told from an absent one on the wire.
		s.Linux.MaskedPaths = slices.Clone(sc.GetMaskedPaths())
		s.Linux.ReadonlyPaths = slices.Clone(sc.GetReadonlyPaths())
		if err := applySeccomp(in, s); err != nil {
			return err
		}
		return applyAppArmor(in, s)
	}
}

// profile is a seccomp or AppArmor choice, from the typed field or the older string one.
func profile(p *runtimeapi.SecurityProfile, legacy string) (typ runtimeapi.SecurityProfile_ProfileType, ref string) {
	if p != nil {
		return p.GetProfileType(), p.GetLocalhostRef()
	}
	switch {
	case legacy == "runtime/default" || legacy == "docker/default":
		return runtimeapi.SecurityProfile_RuntimeDefault, ""
	case strings.HasPrefix(legacy, "localhost/"):
		return runtimeapi.SecurityProfile_Localhost, strings.TrimPrefix(legacy, "localhost/")
	}
	return runtimeapi.SecurityProfile_Unconfined, ""
}

// applySeccomp installs the seccomp profile: containerd's default for RuntimeDefault, a JSON
// file for Localhost, none for Unconfined (the CRI's default).
func applySeccomp(in Input, s *specs.Spec) error {
	sc := in.Config.GetLinux().GetSecurityContext()
	typ, ref := profile(sc.GetSeccomp(), sc.GetSeccompProfilePath())
	switch typ {
	case runtimeapi.SecurityProfile_RuntimeDefault:
		s.Linux.Seccomp = seccomp.DefaultProfile(s)
	case runtimeapi.SecurityProfile_Localhost:
		if ref == "" {
			return fmt.Errorf("security_context.seccomp: a Localhost profile needs localhost_ref: %w", errdefs.ErrInvalidArgument)
		}
		if !filepath.IsAbs(ref) {
			ref = filepath.Join(in.Settings.SeccompProfileRoot, ref)
		}
		b, err := os.ReadFile(ref)
		if err != nil {
			return fmt.Errorf("security_context.seccomp: cannot read profile %s: %v: %w", ref, err, errdefs.ErrInvalidArgument)
		}
		var p specs.LinuxSeccomp
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("security_context.seccomp: profile %s is not a seccomp profile: %v: %w", ref, err, errdefs.ErrInvalidArgument)
		}
		s.Linux.Seccomp = &p
	}
	return nil
}

// applyAppArmor sets a Localhost AppArmor profile. On a node without AppArmor (this kind of
// machine) RuntimeDefault means nothing, and a Localhost profile is an error.
func applyAppArmor(in Input, s *specs.Spec) error {
	sc := in.Config.GetLinux().GetSecurityContext()
	typ, ref := profile(sc.GetApparmor(), sc.GetApparmorProfile())
	if typ != runtimeapi.SecurityProfile_Localhost {
		return nil
	}
	if !in.Settings.AppArmorEnabled {
		return fmt.Errorf("security_context.apparmor: profile %q asked for, but AppArmor is not enabled on this node: %w", ref, errdefs.ErrInvalidArgument)
	}
	loaded, _ := os.ReadFile("/sys/kernel/security/apparmor/profiles")
	if !strings.Contains(string(loaded), ref+" (") {
		return fmt.Errorf("security_context.apparmor: profile %q is not loaded: %w", ref, errdefs.ErrInvalidArgument)
	}
	s.Process.ApparmorProfile = ref
	return nil
}
