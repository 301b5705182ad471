#!/usr/bin/env bash
# Prepares a blobs directory shaped like nitro-cli's
# /usr/share/nitro_enclaves/blobs/x86_64/ for builds and tests on a machine
# that is not a Nitro host. The real blobs (AWS's kernel, init, nsm.ko) ship
# with aws-nitro-enclaves-cli; here they are stood in for by:
#
#   bzImage          vmlinuz of a pinned Debian cloud kernel (build/debs.lock, use test-kernel)
#   bzImage.config   that kernel's config (nitro-cli reads OS and version from line 3)
#   cmdline          a kernel command line for a QEMU guest (with a trailing newline, as a file has)
#   init             a POSIX shell init that does what Nitro's init does (see below)
#   nsm.ko           that kernel's vsock.ko (there is no NSM device off Nitro)
#   modules/         vmw_vsock_virtio_transport_common.ko, vsock_loopback.ko,
#                    vmw_vsock_virtio_transport.ko — for VM tests, not put in the EIF
#
# The init is a script, so the guest needs a /bin/sh: when booting an EIF's
# ramdisks in QEMU, append a busybox-static cpio as one more initrd (Linux
# unpacks concatenated archives as one).
#
# usage: build/test-blobs.sh [OUT_DIR]     (default .cache/test-blobs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/.cache/test-blobs}
DEBS_LOCK=$ROOT/build/debs.lock
DEB_CACHE=${DEB_CACHE:-$ROOT/.cache/debs}
# shellcheck source=build/debs.sh
source "$ROOT/build/debs.sh"

for tool in apt-get dpkg-deb sha256sum; do
  command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 1; }
done

echo "[1/4] kernel package (pinned in build/debs.lock)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
extract_debs test-kernel "$WORK/kernel"

echo "[2/4] bzImage, bzImage.config, vsock modules"
mkdir -p "$OUT/modules"
vmlinuz=$(find "$WORK/kernel/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n1)
config=$(find "$WORK/kernel/boot" -maxdepth 1 -name 'config-*' | head -n1)
[[ -n $vmlinuz && -n $config ]] || { echo "error: no vmlinuz/config in the kernel package" >&2; exit 1; }
install -m 0644 "$vmlinuz" "$OUT/bzImage"
install -m 0644 "$config" "$OUT/bzImage.config"
vsock_dir=$(find "$WORK/kernel/lib/modules" -type d -path '*/net/vmw_vsock' | head -n1)
install -m 0644 "$vsock_dir/vsock.ko" "$OUT/nsm.ko"
for m in vmw_vsock_virtio_transport_common vsock_loopback vmw_vsock_virtio_transport; do
  install -m 0644 "$vsock_dir/$m.ko" "$OUT/modules/$m.ko"
done

echo "[3/4] cmdline"
printf 'console=ttyS0 reboot=k panic=-1 pci=off quiet\n' > "$OUT/cmdline"

echo "[4/4] init"
cat > "$OUT/init" <<'INIT'
#!/bin/sh
# Test stand-in for Nitro's init: mount the pseudo filesystems, load the
# "nsm.ko" module, chroot into /rootfs and exec the argv in /cmd with the
# environment in /env (one entry per line each, as nitro-cli writes them).
set -e
mkdir -p /proc /sys /dev /rootfs/proc /rootfs/sys /rootfs/dev /rootfs/tmp /rootfs/run
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
insmod /nsm.ko 2>/dev/null || true
mount --bind /proc /rootfs/proc
mount --bind /sys /rootfs/sys
mount --bind /dev /rootfs/dev
mount -t tmpfs tmpfs /rootfs/tmp
mount -t tmpfs tmpfs /rootfs/run
set --
while IFS= read -r arg || [ -n "$arg" ]; do set -- "$@" "$arg"; done < /cmd
while IFS= read -r kv || [ -n "$kv" ]; do [ -n "$kv" ] && export "$kv"; done < /env
exec chroot /rootfs "$@"
INIT
chmod 0755 "$OUT/init"
( cd "$OUT" && sha256sum bzImage bzImage.config cmdline init nsm.ko )
echo "blobs ready in $OUT"
