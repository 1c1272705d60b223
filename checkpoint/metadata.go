package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container is what a checkpoint says about the container it holds: its identity and image
// (config.dump), the OCI spec it ran with (spec.dump) and its CRI status (status.dump). All of
// it is the archive's word: a restore reads it to find the base image and name the container,
// never to decide what the new container may do.
type Container struct {
	Config metadata.ContainerConfig
	Spec   specs.Spec
	Status *runtimeapi.ContainerStatus
}

// WriteMetadata writes c's three files into dir.
func WriteMetadata(dir string, c *Container) error {
	return writeJSON(dir, []jsonFile{{ConfigDump, &c.Config}, {SpecDump, &c.Spec}, {StatusDump, c.Status}})
}

// jsonFile is a metadata file of a checkpoint and the value it holds.
type jsonFile struct {
	name string
	v    any
}

// writeJSON writes each file into dir, mode 0600.
func writeJSON(dir string, files []jsonFile) error {
	for _, f := range files {
		b, err := json.Marshal(f.v)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// readJSON reads each file of dir into its value, as ReadMetadata says.
func readJSON(dir string, files []jsonFile) error {
	for _, f := range files {
		b, err := ReadFile(dir, f.name, maxMetadata)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, f.v); err != nil {
			return fmt.Errorf("checkpoint %s: %v: %w", f.name, err, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// maxMetadata bounds each metadata file read from an archive.
const maxMetadata = 4 << 20

// ReadMetadata reads the metadata of the checkpoint unpacked in dir. Each file must be a regular
// file (no link is followed) of at most 4 MiB; a missing or malformed one is InvalidArgument.
func ReadMetadata(dir string) (*Container, error) {
	c := &Container{Status: &runtimeapi.ContainerStatus{}}
	if err := readJSON(dir, []jsonFile{{ConfigDump, &c.Config}, {SpecDump, &c.Spec}, {StatusDump, c.Status}}); err != nil {
		return nil, err
	}
	return c, nil
}

// ReadFile reads the file name of dir, which must be a regular file of at most max bytes; no
// link is followed.
func ReadFile(dir, name string, max int64) ([]byte, error) {
	f, err := OpenFile(dir, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("checkpoint %s: %d bytes, more than %d: %w", name, fi.Size(), max, errdefs.ErrInvalidArgument)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return nil, err
	}
	return b, nil
}

// OpenFile opens the file name (a path relative to dir) for reading. It must be a regular file,
// reached without following a link: a checkpoint that names the node's files through links gets
// an InvalidArgument error, and a missing file is InvalidArgument too.
func OpenFile(dir, name string) (*os.File, error) {
	f, err := openInRoot(dir, name)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("checkpoint has no %s: %w", name, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("checkpoint %s: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("checkpoint %s is not a regular file: %w", name, errdefs.ErrInvalidArgument)
	}
	return f, nil
}

// A pod checkpoint is a directory: pod.options (checkpointctl's CheckpointedPodOptions, its
// containers by name), pod.dump (the pod's config and runtime handler) and each container's
// checkpoint, in the archive's layout, under containers/<name>.
const (
	PodOptions    = metadata.PodOptionsFile
	PodDump       = metadata.PodDumpFile
	ContainersDir = "containers"
	// PodVersion is the version of berth's pod checkpoint layout.
	PodVersion = 1
)

// Pod is what a pod checkpoint says about its pod.
type Pod struct {
	Options metadata.CheckpointedPodOptions
	Dump    PodDumpInfo
}

// PodDumpInfo is pod.dump: the checkpointed pod's config and runtime handler.
type PodDumpInfo struct {
	Config         *runtimeapi.PodSandboxConfig `json:"config"`
	RuntimeHandler string                       `json:"runtimeHandler"`
}

// WritePod writes p's files into dir.
func WritePod(dir string, p *Pod) error {
	return writeJSON(dir, []jsonFile{{PodOptions, &p.Options}, {PodDump, &p.Dump}})
}

// ReadPod reads the pod checkpoint in dir, as ReadMetadata reads a container's.
func ReadPod(dir string) (*Pod, error) {
	p := &Pod{}
	if err := readJSON(dir, []jsonFile{{PodOptions, &p.Options}, {PodDump, &p.Dump}}); err != nil {
		return nil, err
	}
	if p.Options.Version != PodVersion {
		return nil, fmt.Errorf("checkpoint %s: version %d, berth reads %d: %w", PodOptions, p.Options.Version, PodVersion, errdefs.ErrInvalidArgument)
	}
	return p, nil
}
