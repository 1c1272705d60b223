#!/usr/bin/env bash
# install-kind.sh installs what a kind cluster of berth nodes needs beyond hack/install-deps.sh
# (make kind-image, kind-up, conformance), at the versions of hack/versions.env, and nothing that
# is there already:
#   - Debian's podman, kind's provider here (no Docker engine), with berth's own configuration
#     in /etc/berth/kind (contrib/kind/podman): the host's containers.conf is left alone, and
#     podman's CNI file never reaches /etc/cni/net.d, which berth reads;
#   - kind, in BERTH_BIN_DIR;
#   - in KIND_DIR/bin, with the version ldflags that kubeadm's and the e2e suite's version checks
#     read: kubeadm, kubectl, kubelet, kube-apiserver, kube-controller-manager, kube-scheduler,
#     kube-proxy (through the wrapper module test/node-e2e/kube), and etcd and CoreDNS (wrapper
#     modules in test/kind/components), all static.
# With --conformance, also Kubernetes' e2e suite (e2e.test, about 10 minutes the first time) and,
# through hack/install-node-e2e.sh --tools, the ginkgo CLI and agnhost that make conformance runs.
# Idempotent: each binary has a stamp of the version it was built from. Must run as root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
log() { echo "install-kind: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root"; exit 1; }

# --- podman -----------------------------------------------------------------------------------
conf_dir=/etc/berth/kind
mkdir -p "$conf_dir"
# The podman package ships /etc/cni/net.d/87-podman-bridge.conflist (a conffile); divert it
# before the package is unpacked so that it never lands where berth looks for its network.
if ! dpkg-divert --list /etc/cni/net.d/87-podman-bridge.conflist | grep -q .; then
	dpkg-divert --local --no-rename --divert "$conf_dir/87-podman-bridge.conflist.diverted" \
		--add /etc/cni/net.d/87-podman-bridge.conflist >/dev/null
fi
missing=()
for p in podman netavark aardvark-dns; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	log "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
install -m 0644 "$here/../contrib/kind/podman/containers.conf" "$here/../contrib/kind/podman/storage.conf" "$conf_dir/"
# kind always mounts the host's /lib/modules into its nodes.
mkdir -p /lib/modules

# --- Go-built binaries ------------------------------------------------------------------------
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}k8s.io"
export CGO_ENABLED=0
fresh() { [ -x "$1/$2" ] && [ "$(cat "$1/.$2.version" 2>/dev/null)" = "$3" ]; }
stamp() { echo "$3" >"$1/.$2.version"; }
bin=$KIND_DIR/bin
mkdir -p "$bin" "$BERTH_BIN_DIR"

if ! fresh "$BERTH_BIN_DIR" kind "$KIND_VERSION"; then
	log "building sigs.k8s.io/kind@$KIND_VERSION"
	GOBIN=$BERTH_BIN_DIR go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
	stamp "$BERTH_BIN_DIR" kind "$KIND_VERSION"
fi

# Kubernetes' own: the version ldflags of its release builds (a plain build reports
# v0.0.0-master, which kubeadm's skew checks refuse).
kube_module="$here/../test/node-e2e/kube"
minor=${KUBERNETES_VERSION#v1.}
minor=${minor%%.*}
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
done
todo=()
for c in kubeadm kubectl kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
	fresh "$bin" "$c" "$KUBERNETES_VERSION" || todo+=("$c")
done
if ((${#todo[@]})); then
	log "building k8s.io/kubernetes@$KUBERNETES_VERSION: ${todo[*]} (about 10 minutes the first time)"
	(cd "$kube_module" && go build -trimpath -ldflags "$ld" -o "$bin/" "${todo[@]/#/k8s.io/kubernetes/cmd/}")
	for c in "${todo[@]}"; do stamp "$bin" "$c" "$KUBERNETES_VERSION"; done
fi

# component NAME VERSION PACKAGE: builds PACKAGE in the wrapper module test/kind/components/NAME,
# which must require exactly VERSION.
component() {
	local name=$1 version=$2 pkg=$3 dir="$here/../test/kind/components/$1"
	fresh "$bin" "$name" "$version" && return 0
	grep -q " $version\$" "$dir/go.mod" || { log "$dir/go.mod does not require $version (hack/versions.env)"; exit 1; }
	log "building $pkg@$version"
	(cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$bin/$name" "$pkg")
	stamp "$bin" "$name" "$version"
}
component etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3
component coredns "$COREDNS_VERSION" github.com/coredns/coredns
component local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" github.com/rancher/local-path-provisioner

if [ "${1:-}" = --conformance ]; then
	if ! fresh "$bin" e2e.test "$KUBERNETES_VERSION"; then
		log "building k8s.io/kubernetes@$KUBERNETES_VERSION: test/e2e (about 10 minutes the first time)"
		(cd "$kube_module" && go list -deps -test k8s.io/kubernetes/test/e2e >/dev/null &&
			go test -c -vet=off -trimpath -ldflags "$ld" -o "$bin/e2e.test" k8s.io/kubernetes/test/e2e)
		stamp "$bin" e2e.test "$KUBERNETES_VERSION"
	fi
	bash "$here/install-node-e2e.sh" --tools
	# The Aggregator spec's sample API server, Kubernetes' staging module of the same release.
	component sample-apiserver "v0.${KUBERNETES_VERSION#v1.}" k8s.io/sample-apiserver
	# agnhost's base for the conformance suite (test/images: AgnhostRootFS): Debian with the
	# network tools the real agnhost image has, whose options the specs use.
	cache=${KIND_CACHE:-/var/cache/berth/kind}
	packages="bash,dnsutils,netcat-openbsd,curl,socat,iperf,iproute2,iputils-ping,procps,ca-certificates"
	recipe="suite=$VM_DEBIAN_SUITE mirror=$VM_DEBIAN_MIRROR packages=$packages"
	if [[ ! -f $cache/agnhost-rootfs.tar || "$(cat "$cache/agnhost-rootfs.stamp" 2>/dev/null)" != "$recipe" ]]; then
		command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
		log "debootstrap $VM_DEBIAN_SUITE for agnhost's image (a few minutes)"
		mkdir -p "$cache"
		work=$(mktemp -d "$cache/agnhost.XXXXXX")
		debootstrap --variant=minbase --include="$packages" "$VM_DEBIAN_SUITE" "$work/root" "$VM_DEBIAN_MIRROR" >"$work/log" 2>&1 ||
			{ tail -20 "$work/log" >&2; rm -rf "$work"; exit 1; }
		rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/* "$work"/root/usr/share/{doc,man,info}/*
		tar -C "$work/root" --numeric-owner -cf "$cache/agnhost-rootfs.tar" .
		echo "$recipe" >"$cache/agnhost-rootfs.stamp"
		rm -rf "$work"
	fi
fi

log "ok: kind $KIND_VERSION, podman $(podman --version | awk '{print $3}'), Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, CoreDNS $COREDNS_VERSION in $bin"
