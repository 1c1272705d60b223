//go:build tools

// Package tools pins the local-path-provisioner that berth's kind node images carry as the
// default StorageClass's provisioner (make kind-image), as kind's own images do: the module
// requires exactly LOCAL_PATH_PROVISIONER_VERSION of hack/versions.env, and
// hack/install-kind.sh builds its command from here.
package tools

import _ "github.com/rancher/local-path-provisioner"
