#!/usr/bin/env bash
# kind-down.sh deletes the kind cluster of make kind-up (KIND_CLUSTER, default berth).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/kind-env.sh
kind delete cluster --name "$KIND_CLUSTER"
rm -f "$KIND_KUBECONFIG"
