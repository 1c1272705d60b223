package runtime

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	kindContainer = "container"
	labelSandbox  = "io.berth.sandbox"

	containerExtension = "io.berth.container"
	containerTypeURL   = "io.berth.container/v1"
)

// containerRecord is what containerd keeps of a container beyond its spec.
type containerRecord struct {
	Config     []byte         `json:"config"`
	SandboxID  string         `json:"sandboxId"`
	ImageRef   string         `json:"imageRef"`
	ImageName  string         `json:"imageName"`
	LogPath    string         `json:"logPath,omitempty"`
	StopSignal string         `json:"stopSignal,omitempty"`
	UID        uint32         `json:"uid"`
	GID        uint32         `json:"gid"`
	Groups     []uint32       `json:"groups,omitempty"`
	Resources  []byte         `json:"resources,omitempty"`
	State      ContainerState `json:"state"`
	Restore    bool           `json:"restore,omitempty"`
}

func (c *Container) extension() (typeurl.Any, error) {
	cfg, err := proto.Marshal(c.Config)
	if err != nil {
		return nil, err
	}
	var res []byte
	if c.Resources != nil {
		if res, err = proto.Marshal(c.Resources); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(containerRecord{
		Config: cfg, SandboxID: c.SandboxID, ImageRef: c.ImageRef, ImageName: c.ImageName, LogPath: c.LogPath,
		StopSignal: c.StopSignal, UID: c.UID, GID: c.GID, Groups: c.Groups, Resources: res, State: c.State,
		Restore: c.Restore,
	})
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: containerTypeURL, Value: b}, nil
}

// saveContainer writes the container's state to its containerd record.
func (r *Runtime) saveContainer(ctx context.Context, c *Container) error {
	ext, err := c.extension()
	if err != nil {
		return err
	}
	rec := containers.Container{ID: c.ID, Extensions: map[string]typeurl.Any{containerExtension: ext}}
	if _, err := r.client.ContainerService().Update(ctx, rec, "extensions."+containerExtension); err != nil {
		return fmt.Errorf("update container %s in containerd: %w", c.ID, err)
	}
	return nil
}

// loadContainer rebuilds a container from its containerd record.
func loadContainer(rec containers.Container) (*Container, error) {
	ext, ok := rec.Extensions[containerExtension]
	if !ok {
		return nil, fmt.Errorf("container record %s has no %s extension", rec.ID, containerExtension)
	}
	var cr containerRecord
	if err := json.Unmarshal(ext.GetValue(), &cr); err != nil {
		return nil, fmt.Errorf("container record %s: %w", rec.ID, err)
	}
	cfg := &runtimeapi.ContainerConfig{}
	if err := proto.Unmarshal(cr.Config, cfg); err != nil {
		return nil, fmt.Errorf("container record %s config: %w", rec.ID, err)
	}
	c := &Container{
		ID: rec.ID, SandboxID: cr.SandboxID, Config: cfg, ImageRef: cr.ImageRef, ImageName: cr.ImageName,
		LogPath: cr.LogPath, StopSignal: cr.StopSignal, UID: cr.UID, GID: cr.GID, Groups: cr.Groups, State: cr.State,
		Restore: cr.Restore, exited: make(chan struct{}),
	}
	if len(cr.Resources) > 0 {
		c.Resources = &runtimeapi.LinuxContainerResources{}
		if err := proto.Unmarshal(cr.Resources, c.Resources); err != nil {
			return nil, fmt.Errorf("container record %s resources: %w", rec.ID, err)
		}
	}
	if c.State.State != ContainerRunning {
		close(c.exited)
	}
	if rec.Spec != nil {
		if v, err := typeurl.UnmarshalAny(rec.Spec); err == nil {
			if s, ok := v.(*specs.Spec); ok {
				c.process = s.Process
			}
		}
	}
	return c, nil
}
