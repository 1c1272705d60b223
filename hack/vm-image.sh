#!/usr/bin/env bash
# Builds the guest of `make vm-test`, once: a Debian root file system with systemd as PID 1 on
# cgroup v2 (debootstrap from Debian's packages), its kernel and initrd, and the qemu and
# debootstrap this needs on the host. Cached in VM_DIR (default /var/cache/berth/vm) under a
# stamp of everything that goes into it; a changed recipe builds it again. berth's own binaries
# are not in it: each run brings them (test/vm).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/versions.env

VM_DIR=${VM_DIR:-/var/cache/berth/vm}
PACKAGES="systemd,systemd-sysv,dbus,udev,kmod,iproute2,iptables,nftables,ca-certificates,procps,linux-image-amd64,initramfs-tools"
recipe="suite=${VM_DEBIAN_SUITE} mirror=${VM_DEBIAN_MIRROR} size=${VM_DISK_SIZE} packages=${PACKAGES} script=$(sha256sum "$0" | cut -c1-16)"

log() { echo "vm-image: $*" >&2; }

if [[ -f "$VM_DIR/stamp" && "$(cat "$VM_DIR/stamp")" == "$recipe" && -f "$VM_DIR/root.img" ]]; then
	exit 0
fi

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86 qemu-utils)
command -v qemu-img >/dev/null || missing+=(qemu-utils)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
if ((${#missing[@]})); then
	log "apt-get install ${missing[*]}"
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$VM_DIR"
work=$(mktemp -d "$VM_DIR/build.XXXXXX")
trap 'umount -R "$work/root/proc" "$work/root/sys" "$work/root/dev" 2>/dev/null || true; rm -rf "$work"' EXIT
root="$work/root"

log "debootstrap ${VM_DEBIAN_SUITE} (a few minutes)"
debootstrap --variant=minbase --include="$PACKAGES" "$VM_DEBIAN_SUITE" "$root" "$VM_DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 ||
	{ tail -20 "$work/debootstrap.log" >&2; exit 1; }

# The guest: root on /dev/vda, the run's files on a 9p share, DHCP from qemu's user network,
# a root login on the serial console for a look by hand, and the run's script as a unit, run
# at every boot, that powers the guest off (or reboots it) when it is done.
echo berth-vm >"$root/etc/hostname"
cat >"$root/etc/fstab" <<'EOF'
/dev/vda / ext4 rw,relatime 0 1
share /mnt/share 9p trans=virtio,version=9p2000.L,msize=1048576,nofail,x-systemd.device-timeout=10s 0 0
EOF
mkdir -p "$root/mnt/share"
printf '9p\n9pnet_virtio\noverlay\nbr_netfilter\nveth\nbridge\n' >"$root/etc/modules-load.d/berth.conf"
cat >"$root/etc/systemd/network/10-eth.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=ipv4
EOF
chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
chroot "$root" passwd -d root >/dev/null
cat >"$root/etc/systemd/system/berth-vmtest.service" <<'EOF'
[Unit]
Description=berth vm-test: the run's script from the share, then power off
After=network-online.target mnt-share.mount
Wants=network-online.target
RequiresMountsFor=/mnt/share
ConditionPathExists=/mnt/share/run.sh

[Service]
Type=oneshot
ExecStart=/bin/bash /mnt/share/run.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
# run.sh powers the guest off, or reboots it for a test that needs a reboot (it says so in
# /run/vm-test-power); a run.sh that ends without doing either still powers the guest off.
ExecStopPost=/bin/sh -c 'test -e /run/vm-test-power || systemctl --no-block poweroff'

[Install]
WantedBy=multi-user.target
EOF
chroot "$root" systemctl enable berth-vmtest.service systemd-networkd-wait-online.service >/dev/null 2>&1
cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"
rm -rf "$root"/var/cache/apt/archives/*.deb

log "root file system image (${VM_DISK_SIZE})"
mkfs.ext4 -q -F -L root -d "$root" "$work/root.img" "$VM_DISK_SIZE"
mv "$work/vmlinuz" "$work/initrd.img" "$work/root.img" "$VM_DIR/"
echo "$recipe" >"$VM_DIR/stamp"
log "built in $VM_DIR"
