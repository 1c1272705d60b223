package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-runtime/berth/cni"
)

// Sandbox states, as the CRI names them.
const (
	SandboxReady    = "ready"
	SandboxNotReady = "notready"
)

// Sandbox is a pod sandbox: its config, its pinned namespaces and its network. Fields other than
// mu and the immutable ones (ID, Config, CreatedAt, Dir) are guarded by mu; every operation on a
// sandbox holds mu, so that calls on one pod are ordered and calls on different pods are not.
type Sandbox struct {
	mu sync.Mutex

	ID        string
	Config    *runtimeapi.PodSandboxConfig
	CreatedAt time.Time
	// Dir holds the pod's files (resolv.conf, hosts, hostname) and its pinned namespaces (ns/).
	Dir string
	// RuntimeHandler is the handler the pod was run with.
	RuntimeHandler string

	State string
	// NetNS, IPC and UTS are the pinned namespaces' paths; empty when the pod uses the host's.
	NetNS, IPC, UTS string
	// Userns is the pinned user namespace of a pod with one of its own (userns_options mode
	// POD), empty for a pod in the node's. It owns the pod's other namespaces.
	Userns string
	// Network is what CNI ADD gave the pod; nil for host-network pods and before ADD.
	Network *cni.Attachment
	// InfraPid is the pid of the infra process of a pod that shares its PID namespace.
	InfraPid uint32
	// BootID is the node's boot id when the pod was made; rebooted is set when the pod was
	// loaded from the record of an earlier boot.
	BootID   string
	rebooted bool
	// OwnShim is set when berth starts the pod's shim itself and creates the pod's tasks in it
	// through containerd's task API endpoint (see ShimConfig). Fixed when the pod is created.
	OwnShim bool
	// shimMu serializes starting the pod's own shim again when it is gone.
	shimMu sync.Mutex
	// removed is set once RemovePodSandbox has removed the sandbox.
	removed bool
	// cgroupsRemoved is set once the pod's cgroups were removed and the pod left its cgroup
	// parent's count (removePodCgroups), which must happen once.
	cgroupsRemoved bool
	// shimLog is the read end of the log FIFO of a shim berth started for the pod (nil: none).
	// A shim waits for a reader before it serves, so a restarted berthd reopens it. Guarded by
	// shimMu once the sandbox is shared.
	shimLog io.Closer

	// published is the state status and list calls see (see view).
	published atomic.Pointer[SandboxView]
}

// Name is the pod's unique name: name, namespace, uid and attempt, as the kubelet makes it.
func sandboxName(md *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{md.GetName(), md.GetNamespace(), md.GetUid(), fmt.Sprint(md.GetAttempt())}, "_")
}

// hostNetwork reports whether the pod uses the node's network namespace.
func hostNetwork(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
}

// hostIPC reports whether the pod uses the node's IPC namespace.
func hostIPC(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtimeapi.NamespaceMode_NODE
}

func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// sandboxStore indexes the sandboxes berth knows by id and reserves their names. Its lock guards
// only the maps; each sandbox has its own.
type sandboxStore struct {
	mu    sync.RWMutex
	byID  map[string]*Sandbox
	names map[string]string // sandbox name → id
}

func newSandboxStore() *sandboxStore {
	return &sandboxStore{byID: map[string]*Sandbox{}, names: map[string]string{}}
}

// reserve claims name for id, or says which sandbox holds it.
func (s *sandboxStore) reserve(name, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if holder, ok := s.names[name]; ok {
		return fmt.Errorf("pod sandbox name %q is reserved for sandbox %s: %w", name, holder, errdefs.ErrAlreadyExists)
	}
	s.names[name] = id
	return nil
}

func (s *sandboxStore) release(name, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.names[name] == id {
		delete(s.names, name)
	}
}

func (s *sandboxStore) add(sb *Sandbox) {
	sb.publish()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[sb.ID] = sb
	s.names[sandboxName(sb.Config.GetMetadata())] = sb.ID
}

func (s *sandboxStore) remove(sb *Sandbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, sb.ID)
	if name := sandboxName(sb.Config.GetMetadata()); s.names[name] == sb.ID {
		delete(s.names, name)
	}
}

// get finds a sandbox by its id or a unique prefix of it.
func (s *sandboxStore) get(id string) (*Sandbox, error) {
	if id == "" {
		return nil, fmt.Errorf("pod sandbox id is empty: %w", errdefs.ErrInvalidArgument)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if sb, ok := s.byID[id]; ok {
		return sb, nil
	}
	var found *Sandbox
	for full, sb := range s.byID {
		if strings.HasPrefix(full, id) {
			if found != nil {
				return nil, fmt.Errorf("pod sandbox id prefix %q is ambiguous: %w", id, errdefs.ErrInvalidArgument)
			}
			found = sb
		}
	}
	if found == nil {
		return nil, fmt.Errorf("pod sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	return found, nil
}

// list returns every sandbox, oldest first.
func (s *sandboxStore) list() []*Sandbox {
	s.mu.RLock()
	out := make([]*Sandbox, 0, len(s.byID))
	for _, sb := range s.byID {
		out = append(out, sb)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}
