#!/usr/bin/env bash
# version.sh prints berth's version for `make build`: a semantic version, since the kubelet
# parses the runtime's (a node whose runtime version does not parse says berth://Unknown).
# A release tag vX.Y.Z gives X.Y.Z (with -N-gHASH after it for later commits); otherwise
# 0.1.0-dev+HASH; a work tree with changes adds .dirty to the build metadata.
set -u
cd "$(dirname "$0")/.."
dirty=
git diff --quiet HEAD 2>/dev/null || dirty=.dirty
if tag=$(git describe --tags --match 'v[0-9]*.[0-9]*.[0-9]*' 2>/dev/null); then
	v=${tag#v}
	[ -n "$dirty" ] && v+=+dirty
	echo "$v"
elif hash=$(git rev-parse --short HEAD 2>/dev/null); then
	echo "0.1.0-dev+$hash$dirty"
else
	echo 0.1.0-dev
fi
