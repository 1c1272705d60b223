// Package version holds berth's own version, stamped at build time by the Makefile.
package version

// Version is berth's version; `make build` sets it from git describe.
var Version = "0.1.0-dev"

// Name is the runtime name berth reports to the kubelet.
const Name = "berth"
