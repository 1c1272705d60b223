#!/usr/bin/env bash
# conformance.sh runs make conformance: for each CRI of CONFORMANCE_CRIS (default "berth
# containerd"), one after the other, its node image, a kind cluster of it, Kubernetes' e2e suite
# against the cluster (test/kind/conformance), and the cluster's deletion.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=0
for cri in ${CONFORMANCE_CRIS:-berth containerd}; do
	export CRI=$cri KIND_CLUSTER=$cri KIND_KUBECONFIG=$PWD/bin/kind/$cri.kubeconfig
	if bash hack/kind-image.sh && bash hack/kind-up.sh; then
		(source hack/kind-env.sh && go run ./test/kind/conformance) || failed=1
	else
		echo "conformance: $cri: no working cluster" >&2
		failed=1
	fi
	bash hack/kind-down.sh
done
exit $failed
