#!/usr/bin/env bash
# install-node-e2e.sh builds what `make node-e2e` needs beyond hack/install-deps.sh, into
# KUBE_BIN_DIR, from k8s.io/kubernetes at KUBERNETES_VERSION (hack/versions.env) through berth's
# wrapper module test/node-e2e/kube: the node e2e suite's test binary (about 11 minutes on 2 cores
# the first time), the ginkgo CLI that runs it in parallel, and agnhost, the suite's test image
# program. Idempotent: a stamp file records the version each binary was built from. With --tools,
# only ginkgo and agnhost (what make conformance needs of it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
log() { echo "install-node-e2e: $*" >&2; }

kube_module="$here/../test/node-e2e/kube"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
export GONOSUMDB="${GONOSUMDB:+$GONOSUMDB,}k8s.io"
mkdir -p "$KUBE_BIN_DIR"
fresh() { [ -x "$KUBE_BIN_DIR/$1" ] && [ "$(cat "$KUBE_BIN_DIR/.$1.version" 2>/dev/null)" = "$KUBERNETES_VERSION" ]; }
stamp() { echo "$KUBERNETES_VERSION" >"$KUBE_BIN_DIR/.$1.version"; }

cd "$kube_module"
if [ "${1:-}" != --tools ] && ! fresh e2e_node.test; then
	log "building k8s.io/kubernetes@$KUBERNETES_VERSION: test/e2e_node (about 11 minutes the first time)"
	go test -c -vet=off -trimpath -o "$KUBE_BIN_DIR/e2e_node.test" k8s.io/kubernetes/test/e2e_node
	stamp e2e_node.test
fi
if ! fresh ginkgo; then
	# The ginkgo of k8s.io/kubernetes' own go.mod, so that CLI and suite speak the same protocol.
	log "building ginkgo (the version k8s.io/kubernetes@$KUBERNETES_VERSION requires)"
	go build -trimpath -ldflags "-s -w" -o "$KUBE_BIN_DIR/ginkgo" github.com/onsi/ginkgo/v2/ginkgo
	stamp ginkgo
fi
if ! fresh agnhost; then
	log "building k8s.io/kubernetes@$KUBERNETES_VERSION: test/images/agnhost"
	# Static: it runs in a busybox image with no C library.
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$KUBE_BIN_DIR/agnhost" k8s.io/kubernetes/test/images/agnhost
	stamp agnhost
fi
# The TLS certificate and key that agnhost's image carries (its porter and netexec serve HTTPS
# with them), from the same source.
src=$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)
for f in localhost.crt localhost.key; do
	cp "$src/test/images/agnhost/porter/$f" "$KUBE_BIN_DIR/$f"
done
log "ok: $([ "${1:-}" = --tools ] || echo "e2e_node.test, ")ginkgo, agnhost $KUBERNETES_VERSION in $KUBE_BIN_DIR"
