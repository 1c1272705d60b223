# berth's build, run and test loop. See README.md.
SHELL := /bin/bash
include hack/versions.env

GO       ?= go
BIN      := $(CURDIR)/bin
VERSION  := $(shell bash hack/version.sh)
LDFLAGS  := -s -w -X github.com/berth-runtime/berth/version.Version=$(VERSION)
# grpcnotrace: gRPC's request tracing (golang.org/x/net/trace, html/template) is never enabled in
# berthd; containerd's own release builds leave it out the same way.
GOFLAGS_BUILD := -trimpath -tags grpcnotrace -ldflags '$(LDFLAGS)'
# Unit tests: every package but the integration tests, which drive a real berthd.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v -e '/test/e2e' -e '/test/kubelet')

export PATH := $(BERTH_BIN_DIR):$(PATH)

.PHONY: all build deps install run test unit e2e kubelet-smoke critest parity soak soak-quick vm-test vm-test-quick kind-image kind-up kind-down conformance security fuzz-cri fuzz-cri-quick criu node-e2e bench fuzz lint clean

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/berthd ./cmd/berthd
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/berth-pause ./cmd/berth-pause

deps:
	bash hack/install-deps.sh

# Install berth on this node: berthd and berth-pause in PREFIX/bin, the systemd unit, and
# /etc/berth/config.toml (every key at its default, commented) unless one is there already.
# containerd, its shim and runc come from hack/install-deps.sh (/opt/berth/bin); with DESTDIR
# (an image being built) they are copied there too. Then: systemctl daemon-reload; systemctl
# enable --now berth.
PREFIX           ?= /usr/local
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
install: build $(if $(DESTDIR),,deps)
	install -D -m 0755 $(BIN)/berthd $(DESTDIR)$(PREFIX)/bin/berthd
	install -D -m 0755 $(BIN)/berth-pause $(DESTDIR)$(PREFIX)/bin/berth-pause
	install -d $(DESTDIR)$(SYSTEMD_UNIT_DIR) $(DESTDIR)/etc/berth/certs.d
	sed 's#/usr/local/bin/berthd#$(PREFIX)/bin/berthd#' contrib/systemd/berth.service > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/berth.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/berth.service
	test -e $(DESTDIR)/etc/berth/config.toml || install -m 0644 contrib/config.toml $(DESTDIR)/etc/berth/config.toml
	$(if $(DESTDIR),install -d $(DESTDIR)$(BERTH_BIN_DIR) && cp -a $(BERTH_BIN_DIR)/containerd $(BERTH_BIN_DIR)/containerd-shim-runc-v2 $(BERTH_BIN_DIR)/runc $(BERTH_BIN_DIR)/ctr $(BERTH_BIN_DIR)/crictl $(DESTDIR)$(BERTH_BIN_DIR)/,true)
	@echo "installed; now: systemctl daemon-reload && systemctl enable --now berth"

# Serve CRI on /run/berth/berth.sock with the embedded defaults (a managed containerd).
run: deps build
	exec $(BIN)/berthd $(ARGS)

test: deps build unit e2e kubelet-smoke critest parity soak-quick fuzz-cri-quick vm-test-quick

unit:
	$(GO) test -count=1 $(UNIT_PKGS)

# Integration tests: real berthd, containerd, runc and CNI; needs root.
e2e: build
	BERTH_E2E=1 BERTH_BIN=$(BIN) $(GO) test -count=1 -timeout 30m ./test/e2e/...

# A real kubelet (KUBERNETES_VERSION) in front of a real berthd: the pod shapes the kubelet makes.
kubelet-smoke: build
	BERTH_E2E=1 BERTH_BIN=$(BIN) KUBE_BIN_DIR=$(KUBE_BIN_DIR) $(GO) test -count=1 -timeout 10m -v ./test/kubelet/

critest: build
	BERTH_BIN=$(BIN) $(GO) run ./test/conformance

# The differential test: the same kubelet-shaped requests to berthd and to containerd's own CRI,
# every difference in the OCI spec, the process's view and ContainerStatus either fixed or kept
# in test/parity/intended.txt with its reason (report: bin/parity-report.txt). PARITY_FOCUS=name
# runs the cases whose name holds it.
parity: build
	BERTH_E2E=1 BERTH_BIN=$(BIN) $(GO) test -count=1 -timeout 20m ./test/parity/ -run '^TestParity$$' -v 2>&1 | grep -v -e '^=== RUN' -e '^=== PAUSE' -e '^=== CONT'; exit $${PIPESTATUS[0]}

# Kubernetes' node e2e suite (KUBERNETES_VERSION) against berthd; CRI_ENDPOINT=containerd runs
# it against containerd's own CRI for the side-by-side count. Not part of `make test` (about an
# hour the first time: the suite's build alone takes about 11 minutes).
node-e2e: deps build
	bash hack/install-node-e2e.sh
	BERTH_BIN=$(BIN) KUBE_BIN_DIR=$(KUBE_BIN_DIR) $(GO) run ./test/node-e2e

# Pod lifecycles with faults (kill -9 of berthd, shim, containerd, berthd and shim, at each
# call), then leak accounting over everything a pod can leave and a check of every container
# log: prints "soak: N cycles, F faults, L leaks, G log gaps, S stuck pods". About 10 minutes
# for the default SOAK_CYCLES=300; not part of `make test` (a 30-cycle slice is).
soak: deps build
	BERTH_BIN=$(BIN) $(GO) run ./test/soak

# The peers' security advisories replayed against a real berthd (test/e2e's TestAdvisory tests,
# whose quick form make e2e runs too), streams abused 1000 times each; prints
# "security: N passed, N failed, N skipped" and keeps test/security/expected-pass.txt's ratchet.
# About 10 minutes here.
security: deps build
	BERTH_BIN=$(BIN) $(GO) run ./test/security
	FUZZTIME=$(FUZZTIME_CRI) BERTH_BIN=$(BIN) $(GO) run ./test/fuzzcri

# CRIU for checkpoint and restore: Debian's criu (CRIU_VERSION, CRIU_DEBIAN_SUITE) and its
# libraries in CRIU_DIR, the wrapper BERTH_BIN_DIR/criu that runc finds. Part of deps.
criu:
	bash hack/install-criu.sh

# The CRI fuzz alone (test/fuzzcri): every RPC of a live berthd with hostile requests for
# FUZZTIME_CRI, then the node checked for leaks; prints "fuzzcri: N calls, N panics, N leaks".
fuzz-cri: build
	FUZZTIME=$(FUZZTIME_CRI) BERTH_BIN=$(BIN) $(GO) run ./test/fuzzcri

fuzz-cri-quick: build
	FUZZTIME=30s BERTH_BIN=$(BIN) $(GO) run ./test/fuzzcri

soak-quick: build
	SOAK_CYCLES=30 BERTH_BIN=$(BIN) $(GO) run ./test/soak

# berth on a cgroup v2 node with systemd: a Debian guest under qemu (TCG; built once by
# hack/vm-image.sh, cached in VM_DIR), berth installed by make install and run as berth.service,
# the guest tests of test/vm/guest. Prints "vm-test: N passed, N failed, N skipped"; about
# 5 minutes here once the guest is built (its first build takes a few more).
vm-test: deps build
	bash hack/vm-image.sh
	rm -rf $(BIN)/vm-run
	$(MAKE) --no-print-directory install DESTDIR=$(BIN)/vm-run/root
	CGO_ENABLED=0 $(GO) test -c -o $(BIN)/vm-run/vm.test ./test/vm/guest
	BERTH_BIN=$(BIN) $(GO) run ./test/vm

# The slice of make vm-test in make test: berth.service and its containers on the systemd
# guest, without the kubelet and the reboot (about 3 minutes once the guest is built).
vm-test-quick:
	$(MAKE) --no-print-directory vm-test VM_FOCUS='^Test(NodeIs|BerthIs|ContainerIs|OOMKilled|UnitRestart|V2|UserNamespaced)'

# A kind cluster of berth nodes, with podman as kind's provider where no Docker engine answers.
# kind-image: the node image KIND_NODE_IMAGE (hack/versions.env): berth as make install lays it
# out, the kubelet, kubeadm and kubectl of KUBERNETES_VERSION, the pods' network
# (test/kind/nodenet) and the control plane's images, all built here (hack/install-kind.sh,
# hack/kind-image.sh). kind-up: one control plane and two workers, kubeconfig in
# bin/kind/<cluster>.kubeconfig, checked by test/kind/cluster. kind-down: deletes it.
# CRI=containerd: the same with containerd's own CRI in berth's place (cluster "containerd").
kind-image: deps build
	bash hack/install-kind.sh
	bash hack/kind-image.sh

kind-up: kind-image
	bash hack/kind-up.sh

kind-down:
	bash hack/kind-down.sh

# Kubernetes' e2e suite (KUBERNETES_VERSION), its [Conformance] specs, against a kind cluster of
# berth nodes, then against one of containerd's CRI nodes, one after the other (each made by
# kind-up and deleted after), images served from a registry on the kind network through the
# nodes' mirrors: "conformance: N passed, N failed, N skipped" for each, scored against
# test/kind/conformance/expected-pass.txt and skip.txt. CONFORMANCE_FOCUS runs a slice;
# CONFORMANCE_CRIS (default "berth containerd") chooses the clusters.
CONFORMANCE_CRIS ?= berth containerd
conformance: deps build
	bash hack/install-kind.sh --conformance
	CONFORMANCE_CRIS="$(CONFORMANCE_CRIS)" bash hack/conformance.sh

# Fuzz the request translation: each target for FUZZTIME (the seeds run in make unit too).
FUZZTIME ?= 30s
FUZZTIME_CRI ?= 2m
fuzz:
	$(GO) test ./runtime/spec/ -run '^$$' -fuzz '^FuzzGenerate$$' -fuzztime $(FUZZTIME)
	$(GO) test ./runtime/ -run '^$$' -fuzz '^FuzzSandboxConfig$$' -fuzztime $(FUZZTIME)

# berth against containerd's own CRI on this machine, figures printed and in bin/bench.json. The
# kubelet section needs the node e2e suite's API server (e2e_node.test): built once, cached.
# BENCH_SECTIONS=pull,sequential,... runs some sections; BENCH_NODE_IDLE (default 5m) is the
# full node's idle window.
bench: deps build
	bash hack/install-node-e2e.sh
	BERTH_BIN=$(BIN) KUBE_BIN_DIR=$(KUBE_BIN_DIR) $(GO) run ./test/bench

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
