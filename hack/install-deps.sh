#!/usr/bin/env bash
# install-deps.sh installs what berth needs to build, run and test, and nothing that is already
# there at the pinned version (hack/versions.env). Idempotent; must run as root. A second run takes
# seconds: each built binary has a stamp file recording the version it was built from.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: must run as root" >&2
	exit 1
fi

log() { echo "install-deps: $*" >&2; }

# --- Debian packages --------------------------------------------------------------------------
apt_packages=(iptables busybox-static libseccomp-dev pkg-config iproute2 util-linux)
missing=()
for p in "${apt_packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Go-built binaries ------------------------------------------------------------------------
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}sigs.k8s.io/cri-tools"
export CGO_ENABLED=1
mkdir -p "$BERTH_BIN_DIR" "$CNI_BIN_DIR"

# fresh DIR NAME VERSION: true when DIR/NAME was built from VERSION (with its build tags).
fresh() { [ -x "$1/$2" ] && [ "$(cat "$1/.$2.version" 2>/dev/null)" = "$3" ]; }
stamp() { echo "$3" >"$1/.$2.version"; }

# build_module MODULE VERSION DIR TAGS PKG:NAME...: builds each package of MODULE@VERSION into
# DIR/NAME, from a throwaway module so that the module's own go.mod (and its replace directives,
# if any) is honoured exactly as `go build` in a checkout would. CGO_ENABLED=0 before the call
# builds static binaries (the stamp says so).
build_module() {
	local module=$1 version=$2 dir=$3 tags=$4
	shift 4
	local todo=()
	local stampv=$version${tags:+ +${tags// /,}}
	[ "$CGO_ENABLED" = 1 ] || stampv+=" +static"
	for pn in "$@"; do
		fresh "$dir" "${pn#*:}" "$stampv" || todo+=("$pn")
	done
	[ ${#todo[@]} -gt 0 ] || return 0
	log "building ${module}@${version}: ${todo[*]}"
	local src
	src=$(go mod download -json "${module}@${version}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -n "$src" ] || { log "cannot download ${module}@${version}"; exit 1; }
	local work
	work=$(mktemp -d)
	cp -a "$src/." "$work/"
	chmod -R u+w "$work"
	(
		cd "$work"
		for pn in "${todo[@]}"; do
			local pkg=${pn%%:*} name=${pn#*:}
			go build -trimpath -tags "$tags" -ldflags "-s -w $(ldflags_for "$module" "$version")" \
				-o "$dir/$name" "$pkg"
			stamp "$dir" "$name" "$stampv"
		done
	)
	rm -rf "$work"
}

ldflags_for() {
	case "$1" in
	github.com/containerd/containerd/v2)
		echo "-X github.com/containerd/containerd/v2/version.Version=$2" ;;
	github.com/opencontainers/runc)
		echo "-X main.version=${2#v}" ;;
	github.com/containernetworking/plugins)
		echo "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$2" ;;
	sigs.k8s.io/cri-tools)
		echo "-X sigs.k8s.io/cri-tools/pkg/version.Version=$2" ;;
	esac
}

# berth's managed containerd is containerd's daemon built with only the plugins berth calls
# (engine/containerd, a module of its own pinned to CONTAINERD_VERSION): a binary about 7 MB
# smaller than the stock one, which is that much less resident memory on every node.
# containerd-cri is the stock build, CRI included, which the benchmark and the conformance
# comparison run as "containerd's own CRI".
engine_module="$here/../engine/containerd"
if ! grep -q "github.com/containerd/containerd/v2 $CONTAINERD_VERSION\$" "$engine_module/go.mod"; then
	log "engine/containerd/go.mod does not require containerd $CONTAINERD_VERSION (hack/versions.env)"
	exit 1
fi
# The stamp names the version and the plugin list (main.go, go.sum): an edit of either rebuilds.
engine_stamp="$CONTAINERD_VERSION +grpcnotrace +berth-$(cat "$engine_module/main.go" "$engine_module/go.sum" | sha256sum | cut -c1-12)"
if ! fresh "$BERTH_BIN_DIR" containerd "$engine_stamp"; then
	log "building berth's containerd (engine/containerd, containerd $CONTAINERD_VERSION)"
	# grpcnotrace: containerd never turns gRPC's request tracing on; without the tag its code
	# (golang.org/x/net/trace) is linked in all the same.
	(cd "$engine_module" && go build -trimpath -tags grpcnotrace \
		-ldflags "-s -w $(ldflags_for github.com/containerd/containerd/v2 "$CONTAINERD_VERSION")" \
		-o "$BERTH_BIN_DIR/containerd" .)
	stamp "$BERTH_BIN_DIR" containerd "$engine_stamp"
fi
# Built with the tags of containerd's own release (its Makefile's GO_BUILDTAGS and, for the shim,
# SHIM_GO_BUILDTAGS): without no_grpc the shim carries the gRPC service code it never serves
# (14.5 MB against 8.2), and a shim runs beside every pod. The shim is static, as in the release
# (SHIM_CGO_ENABLED=0): every pod execs it twice, and a static Go binary starts about 3.5 ms of
# CPU sooner here than one the dynamic loader has to link against libc first.
build_module github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" "$BERTH_BIN_DIR" "urfave_cli_no_docs" \
	./cmd/containerd:containerd-cri ./cmd/ctr:ctr
CGO_ENABLED=0 build_module github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" "$BERTH_BIN_DIR" "urfave_cli_no_docs no_grpc" \
	./cmd/containerd-shim-runc-v2:containerd-shim-runc-v2

build_module github.com/opencontainers/runc "$RUNC_VERSION" "$BERTH_BIN_DIR" "seccomp urfave_cli_no_docs" .:runc

cni_plugins=(bridge host-local loopback portmap bandwidth firewall tuning ptp host-device macvlan ipvlan vlan static dhcp)
cni_pkgs=()
for p in "${cni_plugins[@]}"; do
	case "$p" in
	host-local | static | dhcp) cni_pkgs+=("./plugins/ipam/$p:$p") ;;
	portmap | bandwidth | firewall | tuning) cni_pkgs+=("./plugins/meta/$p:$p") ;;
	*) cni_pkgs+=("./plugins/main/$p:$p") ;;
	esac
done
# Static, as the plugins' own releases are: each pod execs four of them at its ADD and four at
# its DEL.
CGO_ENABLED=0 build_module github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION" "$CNI_BIN_DIR" "" "${cni_pkgs[@]}"

CGO_ENABLED=0 build_module sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION" "$BERTH_BIN_DIR" "" ./cmd/crictl:crictl

# critest is a Ginkgo test binary: built with `go test -c`, not `go build`.
if ! fresh "$BERTH_BIN_DIR" critest "$CRI_TOOLS_VERSION"; then
	log "building sigs.k8s.io/cri-tools@${CRI_TOOLS_VERSION}: critest"
	src=$(go mod download -json "sigs.k8s.io/cri-tools@${CRI_TOOLS_VERSION}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	work=$(mktemp -d)
	cp -a "$src/." "$work/"
	chmod -R u+w "$work"
	(cd "$work" && go test -c -trimpath -ldflags "-s -w $(ldflags_for sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION")" \
		-o "$BERTH_BIN_DIR/critest" ./cmd/critest)
	stamp "$BERTH_BIN_DIR" critest "$CRI_TOOLS_VERSION"
	rm -rf "$work"
fi

# --- The kubelet ----------------------------------------------------------------------------
# Built from k8s.io/kubernetes through berth's wrapper module (test/node-e2e/kube), which pins the
# staging modules k8s.io/kubernetes replaces with ./staging/... to their published versions.
kube_module="$here/../test/node-e2e/kube"
if ! grep -q "^require k8s.io/kubernetes $KUBERNETES_VERSION\$" "$kube_module/go.mod"; then
	log "test/node-e2e/kube/go.mod does not require k8s.io/kubernetes $KUBERNETES_VERSION (hack/versions.env)"
	exit 1
fi
mkdir -p "$KUBE_BIN_DIR"
if ! fresh "$KUBE_BIN_DIR" kubelet "$KUBERNETES_VERSION"; then
	log "building k8s.io/kubernetes@${KUBERNETES_VERSION}: kubelet (about 4 minutes the first time)"
	(cd "$kube_module" && GONOSUMDB="$GONOSUMDB,k8s.io" go build -trimpath -ldflags "-s -w" \
		-o "$KUBE_BIN_DIR/kubelet" k8s.io/kubernetes/cmd/kubelet)
	stamp "$KUBE_BIN_DIR" kubelet "$KUBERNETES_VERSION"
fi

# --- A default pod network --------------------------------------------------------------------
# berth uses the first conflist in /etc/cni/net.d; give a fresh machine one that works out of the box.
cni_conf_dir=/etc/cni/net.d
mkdir -p "$cni_conf_dir"
# (Any network file counts; an existing one, ours included, is never rewritten.)
networks=$(shopt -s nullglob; echo "$cni_conf_dir"/*.conflist "$cni_conf_dir"/*.conf "$cni_conf_dir"/*.json)
if [ -z "$networks" ]; then
	log "writing the default pod network $cni_conf_dir/10-berth.conflist (bridge berth0, 10.88.0.0/16)"
	cat >"$cni_conf_dir/10-berth.conflist" <<'CONF'
{
  "cniVersion": "1.0.0",
  "name": "berth",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "berth0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.88.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } },
    { "type": "loopback" }
  ]
}
CONF
fi

# CRIU, for checkpoint and restore: beside containerd, where runc finds it.
bash "$here/install-criu.sh"

log "ok: $("$BERTH_BIN_DIR/containerd" --version | awk '{print $3}'), runc $("$BERTH_BIN_DIR/runc" --version | awk 'NR==1{print $3}'), CNI plugins $CNI_PLUGINS_VERSION, cri-tools $CRI_TOOLS_VERSION, kubelet $KUBERNETES_VERSION, criu $CRIU_VERSION"
