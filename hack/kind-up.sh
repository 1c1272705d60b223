#!/usr/bin/env bash
# kind-up.sh creates a kind cluster of berth nodes (one control plane, two workers) from
# KIND_NODE_IMAGE (make kind-image), or with CRI=containerd of containerd's CRI nodes, with
# podman as kind's provider unless a Docker engine answers, writes its kubeconfig to
# KIND_KUBECONFIG (default bin/kind/<cluster>.kubeconfig), and checks it with test/kind/cluster.
# KIND_CLUSTER names it (default: berth, or containerd). `make kind-down` deletes it.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/kind-env.sh
cluster=$KIND_CLUSTER
kubeconfig=$KIND_KUBECONFIG
log() { echo "kind-up: $*" >&2; }
mkdir -p "$(dirname "$kubeconfig")"

# The kubelet of 1.35 and later refuses a cgroup v1 node unless told otherwise; a node
# container sees its host's cgroup version.
cgroupv1=
[[ -f /sys/fs/cgroup/cgroup.controllers ]] || cgroupv1=1
socket=unix:///run/berth/berth.sock
[[ $CRI == containerd ]] && socket=unix:///run/containerd/containerd.sock
image=$(kind_node_image)
config=$(mktemp)
trap 'rm -f "$config"' EXIT
cat >"$config" <<CONFIG
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
- role: worker
kubeadmConfigPatches:
- |
  kind: InitConfiguration
  nodeRegistration:
    criSocket: $socket
- |
  kind: JoinConfiguration
  nodeRegistration:
    criSocket: $socket
${cgroupv1:+- |
  kind: KubeletConfiguration
  failCgroupV1: false}
CONFIG

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
	log "cluster $cluster exists; make kind-down deletes it"
else
	log "creating cluster $cluster from $image"
	kind create cluster --name "$cluster" --image "$image" --config "$config" --kubeconfig "$kubeconfig" --wait 5m
fi
kind get kubeconfig --name "$cluster" >"$kubeconfig"

# CoreDNS forwards what is not the cluster's to the node's resolver: podman's answers UDP only.
corefile=$(kubectl --kubeconfig "$kubeconfig" -n kube-system get configmap coredns -o jsonpath='{.data.Corefile}')
if ! grep -q prefer_udp <<<"$corefile"; then
	patched=$(sed 's#forward \. /etc/resolv.conf {#forward . /etc/resolv.conf {\n       prefer_udp#; s#forward \. /etc/resolv.conf$#forward . /etc/resolv.conf {\n       prefer_udp\n    }#' <<<"$corefile")
	kubectl --kubeconfig "$kubeconfig" -n kube-system create configmap coredns --from-literal=Corefile="$patched" --dry-run=client -o yaml |
		kubectl --kubeconfig "$kubeconfig" -n kube-system apply -f - >/dev/null
	kubectl --kubeconfig "$kubeconfig" -n kube-system rollout restart deployment coredns >/dev/null
fi
kubectl --kubeconfig "$kubeconfig" wait --for=condition=Ready nodes --all --timeout=5m >/dev/null
kubectl --kubeconfig "$kubeconfig" get nodes -o wide

log "checking the cluster (test/kind/cluster)"
results=bin/kind/$cluster.test.log
BERTH_KIND=1 go test -count=1 -v -timeout 20m ./test/kind/cluster/ | tee "$results" | grep -E '^(=== RUN|--- |\s+\S+_test.go)' || true
passed=$(grep -c '^--- PASS' "$results" || true)
failed=$(grep -c '^--- FAIL' "$results" || true)
echo "kind-up: $passed passed, $failed failed, 0 skipped"
log "export KUBECONFIG=$kubeconfig"
[ "$failed" = 0 ] && grep -q '^ok' "$results"
