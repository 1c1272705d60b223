#!/usr/bin/env bash
# install-criu.sh installs CRIU for checkpoint and restore: Debian's criu package at CRIU_VERSION
# from CRIU_DEBIAN_SUITE (hack/versions.env) with every library it needs, glibc included,
# unpacked into CRIU_DIR and run through that glibc's own loader: bookworm's criu 3.17 does not
# work on this kernel, trixie's 4.1.1 hangs in every dump here, and the newer binary needs a
# newer glibc than the host's. Nothing is installed into the host's root and the host's apt
# configuration is not touched: packages come through a private apt configuration. A wrapper,
# BERTH_BIN_DIR/criu, is what runc finds: berth puts BERTH_BIN_DIR first on the PATH of
# containerd and of the shims. Idempotent; must run as root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

log() { echo "install-criu: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	log "must run as root"
	exit 1
fi
if [ -x "$CRIU_DIR/root/usr/sbin/criu" ] && [ "$(cat "$CRIU_DIR/.version" 2>/dev/null)" = "$CRIU_VERSION" ] && [ -x "$BERTH_BIN_DIR/criu" ]; then
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
echo "deb $VM_DEBIAN_MIRROR $CRIU_DEBIAN_SUITE main" >"$work/sources.list"
# A private apt: its own sources, lists and cache, and no installed packages (so that every
# library comes from the same suite as criu, glibc included).
apt=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Dir::State::status=/dev/null
	-o APT::Sandbox::User=root)
log "fetching Debian $CRIU_DEBIAN_SUITE's package lists"
apt-get "${apt[@]}" update -qq
have=$(apt-cache "${apt[@]}" show criu | sed -n 's/^Version: //p' | head -1)
if [ "$have" != "$CRIU_VERSION" ]; then
	log "Debian $CRIU_DEBIAN_SUITE has criu $have, not CRIU_VERSION=$CRIU_VERSION (hack/versions.env)"
	exit 1
fi
mapfile -t pkgs < <(apt-cache "${apt[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances criu | grep '^[a-z0-9]' | sort -u)
log "downloading criu $CRIU_VERSION and ${#pkgs[@]} packages it needs"
(cd "$work/debs" && apt-get "${apt[@]}" download "${pkgs[@]}" >/dev/null)

rm -rf "$CRIU_DIR/root.new"
mkdir -p "$CRIU_DIR/root.new"
for deb in "$work"/debs/*.deb; do
	dpkg-deb -x "$deb" "$CRIU_DIR/root.new"
done
rm -rf "$CRIU_DIR/root.new/usr/share/doc" "$CRIU_DIR/root.new/usr/share/man" "$CRIU_DIR/root.new/usr/share/locale"
rm -rf "$CRIU_DIR/root"
mv "$CRIU_DIR/root.new" "$CRIU_DIR/root"

root=$CRIU_DIR/root
mkdir -p "$BERTH_BIN_DIR"
cat >"$BERTH_BIN_DIR/criu" <<EOF
#!/bin/sh
# CRIU $CRIU_VERSION (Debian $CRIU_DEBIAN_SUITE) with its own glibc, from hack/install-criu.sh.
exec $root/usr/lib64/ld-linux-x86-64.so.2 --library-path $root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu $root/usr/sbin/criu "\$@"
EOF
chmod 0755 "$BERTH_BIN_DIR/criu"
echo "$CRIU_VERSION" >"$CRIU_DIR/.version"
"$BERTH_BIN_DIR/criu" --version >&2
log "ok: $BERTH_BIN_DIR/criu"
