#!/usr/bin/env bash
# Prepares what the QEMU vsock test (test/vm/) needs on the host. Idempotent:
# installs nothing that is already there, downloads the kernel once.
#
#   Debian packages: qemu-system-x86, busybox-static, cpio (apt, --no-install-recommends)
#   A pinned Debian cloud kernel (apt-get download + dpkg-deb -x, never installed)
#     into .cache/vm/kernel/<package>_<version>/, described by .cache/vm/kernel.env
#
# The guest it boots has no network device and real AF_VSOCK over vsock_loopback.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE=.cache/vm
# bookworm point-release kernel: stays in the main archive until the next point release.
KERNEL_PACKAGE=linux-image-6.1.0-50-cloud-amd64
KERNEL_VERSION=6.1.176-1
PACKAGES=(qemu-system-x86 busybox-static cpio)

say() { echo "== vm setup: $*"; }

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test/vm/setup.sh: missing ${missing[*]}; run as root or: apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  apt_update_once
  say "installing ${missing[*]} (--no-install-recommends)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "already installed: ${PACKAGES[*]}"
fi

download_kernel() { # package version → prints the .deb path
  local pkg=$1 ver=$2
  mkdir -p "$CACHE/debs"
  local deb="$CACHE/debs/${pkg}_${ver}_amd64.deb"
  if [ ! -s "$deb" ]; then
    (cd "$CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$ver" >/dev/null 2>&1) || return 1
  fi
  [ -s "$deb" ] && echo "$deb"
}

pkg=$KERNEL_PACKAGE
ver=$KERNEL_VERSION
kdir="$CACHE/kernel/${pkg}_${ver}"
if [ ! -f "$kdir/.complete" ]; then
  deb=$(download_kernel "$pkg" "$ver") || { apt_update_once; deb=$(download_kernel "$pkg" "$ver"); } || deb=""
  if [ -z "$deb" ]; then
    # The archive moved on. Take the kernel the cloud meta-package names now, and say so loudly.
    apt_update_once
    pkg=$(apt-cache depends linux-image-cloud-amd64 | sed -n 's/^ *Depends: \(linux-image-[^ ]*-cloud-amd64\)$/\1/p' | head -1)
    ver=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
    echo "WARNING: pinned $KERNEL_PACKAGE=$KERNEL_VERSION is no longer downloadable; using $pkg=$ver (update the pin in test/vm/setup.sh)" >&2
    kdir="$CACHE/kernel/${pkg}_${ver}"
    if [ ! -f "$kdir/.complete" ]; then deb=$(download_kernel "$pkg" "$ver"); fi
  fi
  if [ ! -f "$kdir/.complete" ]; then
    say "unpacking $pkg=$ver"
    rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
    dpkg-deb -x "$deb" "$kdir.tmp"
    rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
    touch "$kdir/.complete"
  fi
else
  say "kernel $pkg=$ver already unpacked"
fi

kernel=$(ls "$kdir"/boot/vmlinuz-* | head -1)
release=${kernel##*/vmlinuz-}
modules="$kdir/lib/modules/$release/kernel"
for m in net/vmw_vsock/vsock.ko net/vmw_vsock/vmw_vsock_virtio_transport_common.ko net/vmw_vsock/vsock_loopback.ko; do
  [ -f "$modules/$m" ] || { echo "test/vm/setup.sh: $pkg lacks $m" >&2; exit 1; }
done
cat >"$CACHE/kernel.env" <<EOF
VM_KERNEL_PACKAGE=$pkg=$ver
VM_KERNEL=$PWD/$kernel
VM_KERNEL_RELEASE=$release
VM_MODULES=$PWD/$modules
EOF
say "kernel $pkg=$ver ready ($CACHE/kernel.env)"
