// Package engine runs and supervises berth's own containerd: the embedded default engine that
// berthd uses when no --containerd-address is given.
package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// disabledPlugins are the containerd plugins a managed containerd does not load. berth is the CRI,
// so containerd's own CRI (and what only it uses) is off, as are the snapshotters (berth unpacks
// into overlayfs only), mount handlers, image verifiers, restart monitor, gRPC metrics (no
// metrics address is configured), tracing and NRI that berth never calls: each costs memory and
// start-up time. berth's own build of containerd (engine/containerd) has none of them compiled
// in; the list keeps a stock containerd given as -containerd-binary just as lean at run time.
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.cri.v1.images",
	"io.containerd.cri.v1.runtime",
	"io.containerd.podsandbox.controller.v1.podsandbox",
	"io.containerd.sandbox.controller.v1.shim",
	"io.containerd.nri.v1.nri",
	"io.containerd.internal.v1.tracing",
	"io.containerd.tracing.processor.v1.otlp",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.blockfile",
	"io.containerd.snapshotter.v1.erofs",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.native",
	"io.containerd.mount-handler.v1.erofs",
	"io.containerd.image-verifier.v1.bindir",
	"io.containerd.monitor.container.v1.restart",
	"io.containerd.metrics.v1.grpc-prometheus",
	"io.containerd.metrics.v1.grpc-otel",
	"io.containerd.http.v1.pprof",
}

// maxConcurrentUnpacks is how many layers containerd's transfer service applies at once, over
// all pulls: as many as the node has CPUs, at least 2. Above 1 it applies each layer of an image
// into a snapshot of its own as soon as it is fetched and rebases it onto its parent afterwards
// (overlayfs has that capability), instead of one layer after the other: 0.90× containerd's
// CRI's cold pull of a 3-layer image here where one at a time was 1.12×. Whiteouts and opaque
// directories still apply across layers (e2e TestLayerDeletionsApply).
func maxConcurrentUnpacks() int { return max(2, runtime.NumCPU()) }

// configTOML renders the private containerd configuration of a managed engine.
func (m *Managed) configTOML() string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by berthd on every start; edits are overwritten.\n")
	fmt.Fprintf(&b, "version = 3\nroot = %s\nstate = %s\n", q(m.root()), q(m.state()))
	fmt.Fprintf(&b, "disabled_plugins = [")
	for i, p := range disabledPlugins {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(q(p))
	}
	b.WriteString("]\n\n")
	fmt.Fprintf(&b, "[grpc]\n  address = %s\n\n", q(m.Address()))
	fmt.Fprintf(&b, "[ttrpc]\n  address = %s\n\n", q(m.TTRPCAddress()))
	fmt.Fprintf(&b, "[debug]\n  level = %s\n\n", q(m.LogLevel))
	fmt.Fprintf(&b, "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %s\n\n", q(filepath.Join(m.root(), "opt")))
	fmt.Fprintf(&b, "[plugins.\"io.containerd.transfer.v1.local\"]\n  max_concurrent_unpacks = %d\n", maxConcurrentUnpacks())
	return b.String()
}

// writeConfig writes the configuration file, replacing it atomically.
func (m *Managed) writeConfig() error {
	if err := os.MkdirAll(m.state(), 0o711); err != nil {
		return err
	}
	if err := os.MkdirAll(m.root(), 0o711); err != nil {
		return err
	}
	tmp := m.configPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(m.configTOML()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, m.configPath())
}
