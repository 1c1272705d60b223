//go:build tools

// Package tools pins the etcd that berth's kind node images carry (make kind-image): the module
// requires exactly the version in hack/versions.env, and hack/install-kind.sh builds its
// command from here, so a module proxy download builds as a checkout would.
package tools

import _ "go.etcd.io/etcd/server/v3"
