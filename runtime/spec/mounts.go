package spec

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// HostPaths is what the spec needs to know about the node's file system for bind mounts. The
// runtime passes the real one (host.go); tests a fake.
type HostPaths interface {
	// Resolve returns path with every symlink resolved, creating it as a directory if it does not
	// exist (as the kubelet expects for hostPath volumes of type "").
	Resolve(path string) (string, error)
	// Propagation returns the propagation of the mount holding path: "shared", "slave" or
	// "private".
	Propagation(path string) (string, error)
}

func (s Settings) host() HostPaths {
	if s.Host != nil {
		return s.Host
	}
	return realHost{}
}

// ConfigMounts reports whether cfg mounts something at dest itself.
func ConfigMounts(cfg *runtimeapi.ContainerConfig, dest string) bool {
	return slices.ContainsFunc(cfg.GetMounts(), func(m *runtimeapi.Mount) bool {
		return filepath.Clean(m.GetContainerPath()) == dest
	})
}

// withPodFiles binds the pod's hosts, resolv.conf and hostname files, unless the config mounts
// its own.
func withPodFiles(in Input) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if in.Sandbox.Dir == "" {
			return nil
		}
		mode := "rw"
		if in.Config.GetLinux().GetSecurityContext().GetReadonlyRootfs() {
			mode = "ro"
		}
		for _, f := range []struct{ src, dest string }{
			{"hosts", "/etc/hosts"}, {"resolv.conf", "/etc/resolv.conf"}, {"hostname", "/etc/hostname"},
		} {
			if ConfigMounts(in.Config, f.dest) {
				continue
			}
			// Idmapped in a user-namespaced pod, so that the pod's root owns them as the
			// node's root does (as containerd binds them).
			s.Mounts = append(s.Mounts, specs.Mount{
				Source: filepath.Join(in.Sandbox.Dir, f.src), Destination: f.dest, Type: "bind",
				Options:     []string{"rbind", "rprivate", mode},
				UIDMappings: in.Sandbox.UIDMappings, GIDMappings: in.Sandbox.GIDMappings,
			})
		}
		return nil
	}
}

// withShm gives the container the pod's /dev/shm: the tmpfs its containers share, or the node's
// when the pod uses the node's IPC namespace.
func withShm(in Input) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if ConfigMounts(in.Config, "/dev/shm") {
			return nil
		}
		src := in.Sandbox.Shm
		if in.Sandbox.IPC == "" {
			src = "/dev/shm"
		}
		if src == "" {
			return nil // no pod tmpfs (a spec made without a pod): the container's own
		}
		for i, m := range s.Mounts {
			if m.Destination == "/dev/shm" {
				s.Mounts[i] = specs.Mount{Source: src, Destination: "/dev/shm", Type: "bind", Options: []string{"rbind", "rprivate", "rw"}}
			}
		}
		return nil
	}
}

// withImageDefinedVolumes binds the directories made for the image's VOLUMEs, writable even in
// a read-only root file system; a config mount at the same path replaces one (withMounts).
func withImageDefinedVolumes(in Input) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for _, dest := range slices.Sorted(maps.Keys(in.ImageDefinedVolumes)) {
			s.Mounts = append(s.Mounts, specs.Mount{Source: in.ImageDefinedVolumes[dest], Destination: dest, Type: "bind",
				Options: []string{"rbind", "rprivate", "rw"}})
		}
		return nil
	}
}

// withMounts adds the config's mounts, checking what the kubelet relies on: a container path is
// absolute, bidirectional propagation needs a shared host mount, host-to-container propagation
// a shared or slave one, and a recursive read-only mount must be read-only and private.
func withMounts(in Input) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for i, m := range in.Config.GetMounts() {
			field := fmt.Sprintf("mounts[%d]", i)
			dest := m.GetContainerPath()
			if dest == "" || !filepath.IsAbs(dest) {
				return fmt.Errorf("%s.container_path: %q is not an absolute path: %w", field, dest, errdefs.ErrInvalidArgument)
			}
			var mnt specs.Mount
			var err error
			if m.GetImage() != nil {
				mnt, err = imageVolumeMount(in, field, i, m)
			} else {
				mnt, err = hostPathMount(in, s, field, m)
			}
			if err != nil {
				return err
			}
			if mnt.Options, err = withBindOptions(field, mnt.Options, m.GetMountOptions()); err != nil {
				return err
			}
			mnt.Destination, mnt.Type = dest, "bind"
			s.Mounts = slices.DeleteFunc(s.Mounts, func(x specs.Mount) bool { return filepath.Clean(x.Destination) == filepath.Clean(dest) })
			s.Mounts = append(s.Mounts, mnt)
		}
		return nil
	}
}

// imageVolumeMount binds an image volume, which the runtime has mounted (read-only) for the pod.
// Its layers are idmapped by the snapshotter for a user-namespaced pod, not by the bind.
func imageVolumeMount(in Input, field string, i int, m *runtimeapi.Mount) (specs.Mount, error) {
	src, ok := in.ImageVolumes[i]
	if !ok {
		return specs.Mount{}, fmt.Errorf("%s.image %q: not mounted for the pod: %w", field, m.GetImage().GetImage(), errdefs.ErrInvalidArgument)
	}
	return specs.Mount{Source: src, Options: []string{"rbind", "rprivate", "ro"}}, nil
}

// hostPathMount binds a directory or file of the node, with the propagation it asks for (which
// may set the spec's rootfs propagation).
func hostPathMount(in Input, s *oci.Spec, field string, m *runtimeapi.Mount) (specs.Mount, error) {
	if m.GetHostPath() == "" {
		return specs.Mount{}, fmt.Errorf("%s.host_path: empty: %w", field, errdefs.ErrInvalidArgument)
	}
	src, err := in.Settings.host().Resolve(m.GetHostPath())
	if err != nil {
		return specs.Mount{}, fmt.Errorf("%s.host_path %q: %w", field, m.GetHostPath(), err)
	}
	opts := []string{"rbind"}
	switch m.GetPropagation() {
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		if p, err := in.Settings.host().Propagation(src); err != nil {
			return specs.Mount{}, err
		} else if p != "shared" {
			return specs.Mount{}, fmt.Errorf("%s: bidirectional propagation needs %q on a shared mount, but it is %s: %w", field, src, p, errdefs.ErrInvalidArgument)
		}
		opts = append(opts, "rshared")
		s.Linux.RootfsPropagation = "rshared"
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		if p, err := in.Settings.host().Propagation(src); err != nil {
			return specs.Mount{}, err
		} else if p == "private" {
			return specs.Mount{}, fmt.Errorf("%s: host-to-container propagation needs %q on a shared or slave mount, but it is private: %w", field, src, errdefs.ErrInvalidArgument)
		}
		opts = append(opts, "rslave")
		if s.Linux.RootfsPropagation != "rshared" {
			s.Linux.RootfsPropagation = "rslave"
		}
	default:
		opts = append(opts, "rprivate")
	}
	if m.GetRecursiveReadOnly() {
		if !m.GetReadonly() {
			return specs.Mount{}, fmt.Errorf("%s: recursive read-only needs read_only: %w", field, errdefs.ErrInvalidArgument)
		}
		if m.GetPropagation() != runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
			return specs.Mount{}, fmt.Errorf("%s: recursive read-only needs private propagation, not %s: %w", field, m.GetPropagation(), errdefs.ErrInvalidArgument)
		}
		opts = append(opts, "rro") // read-only all the way down: "ro" besides it says nothing more
	} else if m.GetReadonly() {
		opts = append(opts, "ro")
	} else {
		opts = append(opts, "rw")
	}
	// SELinux relabelling (selinux_relabel) is ignored: SELinux is not enabled here.
	// An idmapped mount, as the kubelet asks for a user-namespaced pod's volumes: files the
	// node's root owns are the pod's root's inside.
	return specs.Mount{Source: src, Options: opts, UIDMappings: idMappings(m.GetUidMappings()), GIDMappings: idMappings(m.GetGidMappings())}, nil
}

// bindMountOptions are the options a CRI mount may add (mount_options, the kubelet's
// bindMountOptions of a volume mount): runc applies them to the bind mount.
var bindMountOptions = []string{"noexec", "nodev", "nosuid"}

// withBindOptions adds a mount's mount_options to opts; another option is refused.
func withBindOptions(field string, opts, extra []string) ([]string, error) {
	for _, o := range extra {
		if !slices.Contains(bindMountOptions, o) {
			return nil, fmt.Errorf("%s.mount_options: %q is not one of %v: %w", field, o, bindMountOptions, errdefs.ErrInvalidArgument)
		}
		if !slices.Contains(opts, o) {
			opts = append(opts, o)
		}
	}
	return opts, nil
}

// idMappings converts CRI id mappings to the OCI spec's.
func idMappings(ms []*runtimeapi.IDMapping) []specs.LinuxIDMapping {
	if len(ms) == 0 {
		return nil
	}
	out := make([]specs.LinuxIDMapping, len(ms))
	for i, m := range ms {
		out[i] = specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()}
	}
	return out
}
