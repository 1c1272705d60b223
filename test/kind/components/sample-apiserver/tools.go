//go:build tools

// Package tools pins the sample-apiserver of the conformance suite's Aggregator spec (the
// image registry.k8s.io/e2e-test-images/sample-apiserver, built by test/images): the module
// requires exactly k8s.io/sample-apiserver at KUBERNETES_VERSION's staging version, and
// hack/install-kind.sh --conformance builds its command from here.
package tools

import _ "k8s.io/sample-apiserver"
