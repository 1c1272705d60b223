//go:build tools

// Package tools pins the coredns that berth's kind node images carry (make kind-image): the module
// requires exactly the version in hack/versions.env, and hack/install-kind.sh builds its
// command from here, so a module proxy download builds as a checkout would.
package tools

import _ "github.com/coredns/coredns"
