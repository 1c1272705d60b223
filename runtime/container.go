package runtime

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/runtime/logs"
)

// Container states, as the CRI names them.
const (
	ContainerCreated = "created"
	ContainerRunning = "running"
	ContainerExited  = "exited"
	ContainerUnknown = "unknown"
)

// Exit reasons, as the kubelet reads them.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
)

// ContainerState is what changes over a container's life; it is saved in its containerd record.
type ContainerState struct {
	State      string    `json:"state"`
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	ExitCode   int32     `json:"exitCode"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
	Pid        uint32    `json:"pid,omitempty"`
}

// Container is one container of a pod. The immutable fields are set at create; State changes
// under mu, and every operation on the container holds mu.
type Container struct {
	mu sync.Mutex

	ID        string
	SandboxID string
	Config    *runtimeapi.ContainerConfig
	// ImageRef is the image id (config digest) the container was made from; ImageName is what
	// the config asked for.
	ImageRef, ImageName string
	// LogPath is the container's CRI log file, "" for none.
	LogPath string
	// StopSignal is the config's stop_signal, else the image's STOPSIGNAL; "" for SIGTERM.
	StopSignal string
	// UID, GID and Groups are the identity its process runs as.
	UID, GID uint32
	Groups   []uint32
	// Resources are the resources it runs with, as applied to its spec (a limit the node cannot
	// enforce, or an oom_score_adj below berthd's, is not what was asked): as created, then as
	// updated.
	Resources *runtimeapi.LinuxContainerResources

	State ContainerState
	// Restore says that starting the container restores the checkpoint it was created from
	// (its CRIU images wait in restoreDir) rather than running its command.
	Restore bool

	// log is the open log file of a started container; exited is closed when its task has
	// exited and its state was saved.
	log    *logs.File
	exited chan struct{}
	// oomReported is set when the shim reports that the kernel OOM-killed the task;
	// killedByBerth when berth sent it SIGKILL (a stop past its grace, a removal).
	oomReported, killedByBerth atomic.Bool
	// io is a started container's stdio, for Attach.
	io *stdio
	// process is the OCI process the container runs (execs run as it does); running is its
	// task while it runs: execs use both without asking containerd for them each time.
	process *specs.Process
	running atomic.Pointer[containerd.Task]
	// removed is set once the container is removed.
	removed bool

	published atomic.Pointer[ContainerView]
}

// ContainerView is a consistent copy of a container, for status and listing.
type ContainerView struct {
	ID, SandboxID       string
	Config              *runtimeapi.ContainerConfig
	ImageRef, ImageName string
	LogPath             string
	// StopSignal is the signal StopContainer sends first; "" for SIGTERM.
	StopSignal string
	UID, GID   uint32
	Groups     []uint32
	Resources  *runtimeapi.LinuxContainerResources
	State      ContainerState
}

// publish makes the current state what view returns; c.mu must be held (or c not yet shared).
func (c *Container) publish() {
	c.published.Store(&ContainerView{
		ID: c.ID, SandboxID: c.SandboxID, Config: c.Config, ImageRef: c.ImageRef, ImageName: c.ImageName,
		LogPath: c.LogPath, StopSignal: c.StopSignal, UID: c.UID, GID: c.GID, Groups: c.Groups, Resources: c.Resources, State: c.State,
	})
}

// view returns the last published state without taking the container's lock.
func (c *Container) view() ContainerView { return *c.published.Load() }

// containerName is the container's unique name within its pod.
func containerName(sandboxID string, md *runtimeapi.ContainerMetadata) string {
	return strings.Join([]string{sandboxID, md.GetName(), fmt.Sprint(md.GetAttempt())}, "_")
}

// containerStore indexes containers by id and reserves their names.
type containerStore struct {
	mu    sync.RWMutex
	byID  map[string]*Container
	names map[string]string
}

func newContainerStore() *containerStore {
	return &containerStore{byID: map[string]*Container{}, names: map[string]string{}}
}

func (s *containerStore) reserve(name, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if holder, ok := s.names[name]; ok {
		return fmt.Errorf("container name %q is reserved for container %s: %w", name, holder, errdefs.ErrAlreadyExists)
	}
	s.names[name] = id
	return nil
}

func (s *containerStore) release(name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.names[name] == id {
		delete(s.names, name)
	}
}

func (s *containerStore) add(c *Container) {
	c.publish()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[c.ID] = c
	s.names[containerName(c.SandboxID, c.Config.GetMetadata())] = c.ID
}

func (s *containerStore) remove(c *Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, c.ID)
	if name := containerName(c.SandboxID, c.Config.GetMetadata()); s.names[name] == c.ID {
		delete(s.names, name)
	}
}

// get finds a container by id or unique id prefix.
func (s *containerStore) get(id string) (*Container, error) {
	if id == "" {
		return nil, fmt.Errorf("container id is empty: %w", errdefs.ErrInvalidArgument)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c, ok := s.byID[id]; ok {
		return c, nil
	}
	var found *Container
	for full, c := range s.byID {
		if strings.HasPrefix(full, id) {
			if found != nil {
				return nil, fmt.Errorf("container id prefix %q is ambiguous: %w", id, errdefs.ErrInvalidArgument)
			}
			found = c
		}
	}
	if found == nil {
		return nil, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	return found, nil
}

// list returns every container, oldest first; of one pod when sandboxID is set.
func (s *containerStore) list(sandboxID string) []*Container {
	s.mu.RLock()
	out := make([]*Container, 0, len(s.byID))
	for _, c := range s.byID {
		if sandboxID == "" || c.SandboxID == sandboxID {
			out = append(out, c)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].view().State.CreatedAt.Before(out[j].view().State.CreatedAt) })
	return out
}

// loadedSandbox finds pod sandbox id once berthd's state is loaded (see waitLoaded).
func (r *Runtime) loadedSandbox(ctx context.Context, id string) (*Sandbox, error) {
	if err := r.waitLoaded(ctx); err != nil {
		return nil, err
	}
	return r.sandboxes.get(id)
}

// loadedContainer finds container id once berthd's state is loaded (see waitLoaded).
func (r *Runtime) loadedContainer(ctx context.Context, id string) (*Container, error) {
	if err := r.waitLoaded(ctx); err != nil {
		return nil, err
	}
	return r.containers.get(id)
}
