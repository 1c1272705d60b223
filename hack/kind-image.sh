#!/usr/bin/env bash
# kind-image.sh builds berth's kind node image (KIND_NODE_IMAGE in hack/versions.env) in podman's
# store of berth's kind configuration (/etc/berth/kind), or with CRI=containerd the same node
# with containerd's own CRI in berth's place (KIND_NODE_IMAGE with -containerd before its tag),
# as kind's own node image is, for side-by-side runs: a Debian root file system with systemd
# as PID 1 (debootstrap, cached in KIND_CACHE), berth laid out by `make install` as on any node
# (berthd, berth.service, containerd, runc, crictl), the kubelet, kubeadm and kubectl of
# KUBERNETES_VERSION, the CNI plugins, the files of contrib/kind/node, and preloaded into
# berth's containerd the control plane's images and the pod network's (berth-kind-net,
# test/kind/nodenet, which contrib/kind/node/kind/manifests/default-cni.yaml runs). The tools come from hack/install-deps.sh and hack/install-kind.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/kind-env.sh
image=$(kind_node_image)
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
cp -a contrib/kind/node/. "$node/"
case $CRI in
berth)
	make --no-print-directory install DESTDIR="$node" >/dev/null
	cp -a contrib/kind/berth/. "$node/"
	runtime_unit=berth.service
	;;
containerd)
	# containerd's stock build (with its CRI plugin) and what it runs, where kind's image has them.
	install -m 0755 "$BERTH_BIN_DIR/containerd-cri" "$node/usr/local/bin/containerd"
	install -m 0755 "$BERTH_BIN_DIR"/{containerd-shim-runc-v2,ctr,crictl} "$node/usr/local/bin/"
	install -m 0755 "$BERTH_BIN_DIR/runc" "$node/usr/local/sbin/runc"
	cp -a contrib/kind/containerd/. "$node/"
	runtime_unit=containerd.service
	;;
*)
	log "CRI=$CRI: berth or containerd"
	exit 1
	;;
esac
install -m 0755 "$KIND_DIR"/bin/{kubelet,kubeadm,kubectl} "$node/usr/bin/"
mkdir -p "$node/opt/cni/bin"
for p in ptp host-local portmap loopback bridge; do install -m 0755 "$CNI_BIN_DIR/$p" "$node/opt/cni/bin/"; done
[[ -e $node/usr/local/bin/crictl ]] || ln -sf /opt/berth/bin/crictl "$node/usr/local/bin/crictl"
echo "$KUBERNETES_VERSION" >"$node/kind/version"
mkdir -p "$node/etc/kubernetes/manifests" "$node/var/lib/kubelet"
# systemd in a container: no gettys, udev, time sync or binfmt; the runtime and the kubelet
# start at boot.
rm -f "$node"/etc/systemd/system/getty.target.wants/* "$node"/etc/systemd/system/multi-user.target.wants/*
for u in systemd-binfmt.service systemd-udevd.service systemd-timesyncd.service getty.target console-getty.service \
	systemd-modules-load.service sys-kernel-config.mount; do
	ln -sf /dev/null "$node/etc/systemd/system/$u"
done
mkdir -p "$node/etc/systemd/system/multi-user.target.wants"
for u in "$runtime_unit" kubelet.service; do
	for dir in /etc/systemd/system /usr/local/lib/systemd/system; do
		if [[ -e $node$dir/$u ]]; then
			ln -sf "$dir/$u" "$node/etc/systemd/system/multi-user.target.wants/$u"
		fi
	done
done

# --- The control plane's images ---------------------------------------------------------------
log "control plane images"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/berth-kind-net" ./test/kind/nodenet
go run ./test/kind/images -bin "$KIND_DIR/bin" -pause bin/berth-pause -net "$work/berth-kind-net" -rootfs "$KIND_CACHE/rootfs.tar" -out "$work/images" >"$work/images.txt"

# --- The image: the tree, then a boot that preloads the images --------------------------------
log "importing the node's tree"
base=$image-base
tar -C "$node" --numeric-owner -c . | podman import \
	--change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
	--change 'ENV container=podman' \
	--change 'STOPSIGNAL SIGRTMIN+3' \
	- "$base" >/dev/null
rm -rf "$node"

log "preloading the images into $CRI's containerd"
podman run -d --name "$preload" --hostname "$preload" --privileged --cgroupns=private \
	--tmpfs /tmp --tmpfs /run -v /lib/modules:/lib/modules:ro "$base" >/dev/null
for i in $(seq 120); do
	podman exec "$preload" crictl info >/dev/null 2>&1 && break
	[[ $i == 120 ]] && { podman logs "$preload" | tail -30 >&2; podman exec "$preload" journalctl -u "$runtime_unit" --no-pager | tail -30 >&2; log "$CRI did not start in the node"; exit 1; }
	sleep 1
done
while read -r archive; do
	# As a kind node image's own preload: the content only; berth unpacks an image when a
	# container first needs it.
	podman exec -i "$preload" ctr --namespace=k8s.io images import --all-platforms --digests --no-unpack - <"$archive" >/dev/null
done <"$work/images.txt"
podman exec "$preload" crictl images >&2
# containerd's database is written out when containerd stops: under berth, berthd first, which
# would start it again (berth.service leaves it running), then containerd; the node then powers
# off.
podman exec "$preload" sh -c "systemctl stop $runtime_unit; pidof containerd >/dev/null || exit 0; kill \$(pidof containerd) &&
	for i in \$(seq 100); do pidof containerd >/dev/null || exit 0; sleep 0.2; done; exit 1" ||
	{ log "containerd did not stop in the node"; exit 1; }
podman stop -t 30 "$preload" >/dev/null
podman commit -q \
	--change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
	--change 'STOPSIGNAL SIGRTMIN+3' \
	"$preload" "$image" >/dev/null
podman rm "$preload" >/dev/null
# The tree's image, and an older build's node image this one took the name of.
podman rmi "$base" >/dev/null
podman image prune -f >/dev/null
log "built $image ($(podman image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
