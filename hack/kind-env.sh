# kind-env.sh is sourced by the kind scripts: the pinned versions, the tools on PATH, and podman
# (with berth's configuration in /etc/berth/kind) as kind's provider unless a Docker engine
# answers.
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"
export PATH=$BERTH_BIN_DIR:$KIND_DIR/bin:$PATH
if ! docker info >/dev/null 2>&1; then
	export KIND_EXPERIMENTAL_PROVIDER=podman
	export CONTAINERS_CONF=/etc/berth/kind/containers.conf CONTAINERS_STORAGE_CONF=/etc/berth/kind/storage.conf
fi
export KIND_CLUSTER=${KIND_CLUSTER:-berth}
export KIND_KUBECONFIG=${KIND_KUBECONFIG:-$PWD/bin/kind/kubeconfig}
