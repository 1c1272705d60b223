// Package runtime runs pods and containers through containerd: sandboxes, containers, OCI specs,
// tasks, exits, logs, stats and streaming. Everything it knows is kept in containerd (see
// DESIGN.md, key decision 1).
package runtime

import (
	"context"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// Namespace is the containerd namespace berth keeps all its objects in, so that it never sees or
// touches another client's containers.
const Namespace = "berth"

// readyTimeout bounds the health check behind CRI Status, which the kubelet calls every few
// seconds and must never hang on a stuck containerd.
const readyTimeout = 2 * time.Second

// Runtime is berth's view of its containerd.
type Runtime struct {
	client *containerd.Client
}

// New returns a Runtime over client, whose default namespace must be Namespace.
func New(client *containerd.Client) *Runtime {
	return &Runtime{client: client}
}

// Connect returns a containerd client for address. It does not wait for containerd: a containerd
// that is down or not there yet makes calls fail, not Connect, and the client reconnects when it
// comes back.
func Connect(address string) (*containerd.Client, error) {
	c, err := containerd.New(address,
		containerd.WithDefaultNamespace(Namespace),
		// Bounds the reconnect back-off, so that a restarted containerd is found again quickly.
		containerd.WithTimeout(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("containerd client for %s: %w", address, err)
	}
	return c, nil
}

// Ready reports nil when containerd answers its health check, else why not.
func (r *Runtime) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	serving, err := r.client.IsServing(ctx)
	if err != nil {
		return fmt.Errorf("containerd is not answering: %w", err)
	}
	if !serving {
		return fmt.Errorf("containerd is not serving")
	}
	return nil
}

// EngineVersion returns containerd's version and revision.
func (r *Runtime) EngineVersion(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	v, err := r.client.Version(ctx)
	if err != nil {
		return "", fmt.Errorf("containerd version: %w", err)
	}
	return v.Version, nil
}
