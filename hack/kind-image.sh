#!/usr/bin/env bash
# kind-image.sh builds berth's kind node image (KIND_NODE_IMAGE in hack/versions.env) in podman's
# store of berth's kind configuration (/etc/berth/kind): a Debian root file system with systemd
# as PID 1 (debootstrap, cached in KIND_CACHE), berth laid out by `make install` as on any node
# (berthd, berth.service, containerd, runc, crictl), the kubelet, kubeadm and kubectl of
# KUBERNETES_VERSION, the CNI plugins, the files of contrib/kind/node, and preloaded into
# berth's containerd the control plane's images and the pod network's (berth-kind-net,
# test/kind/nodenet, which contrib/kind/node/kind/manifests/default-cni.yaml runs). The tools come from hack/install-deps.sh and hack/install-kind.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/versions.env
export CONTAINERS_CONF=/etc/berth/kind/containers.conf CONTAINERS_STORAGE_CONF=/etc/berth/kind/storage.conf
KIND_CACHE=${KIND_CACHE:-/var/cache/berth/kind}
log() { echo "kind-image: $*" >&2; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

# --- The Debian root file system, built once --------------------------------------------------
PACKAGES="systemd,systemd-sysv,dbus,kmod,iproute2,iptables,nftables,conntrack,ethtool,ca-certificates,procps,util-linux,mount,libseccomp2,socat,e2fsprogs"
recipe="suite=${VM_DEBIAN_SUITE} mirror=${VM_DEBIAN_MIRROR} packages=${PACKAGES}"
mkdir -p "$KIND_CACHE"
work=$(mktemp -d "$KIND_CACHE/build.XXXXXX")
preload=berth-kind-preload-$$
cleanup() {
	podman rm -f "$preload" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
if [[ ! -f $KIND_CACHE/rootfs.tar || "$(cat "$KIND_CACHE/rootfs.stamp" 2>/dev/null)" != "$recipe" ]]; then
	command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
	log "debootstrap ${VM_DEBIAN_SUITE} (a few minutes)"
	debootstrap --variant=minbase --include="$PACKAGES" "$VM_DEBIAN_SUITE" "$work/rootfs" "$VM_DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; exit 1; }
	rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/usr/share/{doc,man,info}/*
	tar -C "$work/rootfs" --numeric-owner -cf "$KIND_CACHE/rootfs.tar" .
	echo "$recipe" >"$KIND_CACHE/rootfs.stamp"
	rm -rf "$work/rootfs"
fi

# --- The node's tree --------------------------------------------------------------------------
node=$work/node
mkdir "$node"
tar -C "$node" --numeric-owner -xf "$KIND_CACHE/rootfs.tar"
make --no-print-directory install DESTDIR="$node" >/dev/null
cp -a contrib/kind/node/. "$node/"
install -m 0755 "$KIND_DIR"/bin/{kubelet,kubeadm,kubectl} "$node/usr/bin/"
mkdir -p "$node/opt/cni/bin"
for p in ptp host-local portmap loopback bridge; do install -m 0755 "$CNI_BIN_DIR/$p" "$node/opt/cni/bin/"; done
ln -sf /opt/berth/bin/crictl "$node/usr/local/bin/crictl"
echo "$KUBERNETES_VERSION" >"$node/kind/version"
mkdir -p "$node/etc/kubernetes/manifests" "$node/var/lib/kubelet"
# systemd in a container: no gettys, udev, time sync or binfmt; berth, the kubelet and the pod
# network start at boot.
rm -f "$node"/etc/systemd/system/getty.target.wants/* "$node"/etc/systemd/system/multi-user.target.wants/*
for u in systemd-binfmt.service systemd-udevd.service systemd-timesyncd.service getty.target console-getty.service \
	systemd-modules-load.service sys-kernel-config.mount; do
	ln -sf /dev/null "$node/etc/systemd/system/$u"
done
mkdir -p "$node/etc/systemd/system/multi-user.target.wants"
for u in berth.service kubelet.service; do
	unit=$(find "$node/etc/systemd/system" "$node/usr/local/lib/systemd/system" -maxdepth 1 -name "$u" | head -1)
	ln -sf "${unit#"$node"}" "$node/etc/systemd/system/multi-user.target.wants/$u"
done

# --- The control plane's images ---------------------------------------------------------------
log "control plane images"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/berth-kind-net" ./test/kind/nodenet
go run ./test/kind/images -bin "$KIND_DIR/bin" -pause bin/berth-pause -net "$work/berth-kind-net" -rootfs "$KIND_CACHE/rootfs.tar" -out "$work/images" >"$work/images.txt"

# --- The image: the tree, then a boot that preloads the images --------------------------------
log "importing the node's tree"
base=$KIND_NODE_IMAGE-base
tar -C "$node" --numeric-owner -c . | podman import \
	--change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
	--change 'ENV container=podman' \
	--change 'STOPSIGNAL SIGRTMIN+3' \
	- "$base" >/dev/null
rm -rf "$node"

log "preloading the images into berth's containerd"
podman run -d --name "$preload" --hostname "$preload" --privileged --cgroupns=private \
	--tmpfs /tmp --tmpfs /run -v /lib/modules:/lib/modules:ro "$base" >/dev/null
for i in $(seq 120); do
	podman exec "$preload" crictl info >/dev/null 2>&1 && break
	[[ $i == 120 ]] && { podman logs "$preload" | tail -30 >&2; podman exec "$preload" journalctl -u berth --no-pager | tail -30 >&2; log "berth did not start in the node"; exit 1; }
	sleep 1
done
while read -r archive; do
	# As a kind node image's own preload: the content only; berth unpacks an image when a
	# container first needs it.
	podman exec -i "$preload" ctr --namespace=k8s.io images import --all-platforms --digests --no-unpack - <"$archive" >/dev/null
done <"$work/images.txt"
podman exec "$preload" crictl images >&2
# containerd's database is written out when containerd stops: berthd first, which would start
# it again (berth.service leaves it running), then containerd; the node then powers off.
podman exec "$preload" sh -c 'systemctl stop berth && kill $(pidof containerd) &&
	for i in $(seq 100); do pidof containerd >/dev/null || exit 0; sleep 0.2; done; exit 1' ||
	{ log "containerd did not stop in the node"; exit 1; }
podman stop -t 30 "$preload" >/dev/null
podman commit -q \
	--change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
	--change 'STOPSIGNAL SIGRTMIN+3' \
	"$preload" "$KIND_NODE_IMAGE" >/dev/null
podman rm "$preload" >/dev/null
# The tree's image, and an older build's node image this one took the name of.
podman rmi "$base" >/dev/null
podman image prune -f >/dev/null
log "built $KIND_NODE_IMAGE ($(podman image inspect -f '{{.Size}}' "$KIND_NODE_IMAGE" | numfmt --to=iec))"
