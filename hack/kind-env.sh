# kind-env.sh is sourced by the kind scripts: the pinned versions, the tools on PATH, and podman
# (with berth's configuration in /etc/berth/kind) as kind's provider unless a Docker engine
# answers.
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"
export PATH=$BERTH_BIN_DIR:$KIND_DIR/bin:$PATH
if ! docker info >/dev/null 2>&1; then
	export KIND_EXPERIMENTAL_PROVIDER=podman
	export CONTAINERS_CONF=/etc/berth/kind/containers.conf CONTAINERS_STORAGE_CONF=/etc/berth/kind/storage.conf
fi
# CRI=containerd: the same node with containerd's own CRI, the cluster berth's is compared with.
export CRI=${CRI:-berth}
export KIND_CLUSTER=${KIND_CLUSTER:-$CRI}
export KIND_KUBECONFIG=${KIND_KUBECONFIG:-$PWD/bin/kind/$KIND_CLUSTER.kubeconfig}

# kind_node_image: the node image of CRI.
kind_node_image() {
	case $CRI in
	containerd) echo "${KIND_NODE_IMAGE%:*}-containerd:${KIND_NODE_IMAGE##*:}" ;;
	*) echo "$KIND_NODE_IMAGE" ;;
	esac
}
