#!/usr/bin/env bash
# Fetches a Linux kernel image for the test VMs and caches it in DIR.
#
# Usage: vmtest/fetch-kernel.sh DIR
#
# Downloads Debian's cloud kernel (the image package that the
# `linux-image-cloud-amd64` meta-package depends on) with `apt-get download`,
# unpacks it with `dpkg -x` (nothing is installed on the host), and leaves
#   DIR/vmlinuz   the kernel image
#   DIR/config    its build configuration
# A second run with the same DIR reuses them. Prints the path of the kernel.
#
# The ivshmem-plain device needs no guest driver: it is a plain PCI device
# whose BAR2 is mapped through sysfs (/sys/bus/pci/devices/*/resource2). The
# kernel therefore only needs PCI, sysfs, devtmpfs, a serial console and a
# gzip initramfs, which this script checks in the kernel's configuration.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 2
fi
dir=$1
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [ ! -s "$dir/vmlinuz" ] || [ ! -s "$dir/config" ]; then
  command -v apt-get >/dev/null || { echo "fetch-kernel: apt-get not found (a Debian/Ubuntu host is needed)" >&2; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  meta=linux-image-cloud-amd64
  if ! apt-get download "$meta" >/dev/null 2>apt.err; then
    # The package lists may be missing on a fresh machine.
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get download "$meta" >/dev/null 2>apt.err || {
      echo "fetch-kernel: apt-get download $meta failed:" >&2; cat apt.err >&2; exit 1; }
  fi
  # The meta-package depends on the real image package, e.g.
  # linux-image-6.1.0-28-cloud-amd64 (= 6.1.119-1).
  depends=$(dpkg-deb -f "$meta"_*.deb Depends)
  image=$(printf '%s\n' "$depends" | tr ',' '\n' | sed 's/^ *//; s/ .*//' \
    | grep -E '^linux-image-[0-9].*-cloud-amd64$' | head -n1 || true)
  [ -n "$image" ] || { echo "fetch-kernel: no kernel image package in '$depends'" >&2; exit 1; }
  echo "fetch-kernel: downloading $image" >&2
  apt-get download "$image" >/dev/null 2>apt.err || {
    echo "fetch-kernel: apt-get download $image failed:" >&2; cat apt.err >&2; exit 1; }
  dpkg -x "$image"_*.deb root
  kernel=$(ls root/boot/vmlinuz-* 2>/dev/null | head -n1)
  config=$(ls root/boot/config-* 2>/dev/null | head -n1)
  [ -n "$kernel" ] && [ -n "$config" ] || { echo "fetch-kernel: $image holds no /boot/vmlinuz-* or /boot/config-*" >&2; exit 1; }
  cp "$config" "$dir/config.tmp" && mv "$dir/config.tmp" "$dir/config"
  cp "$kernel" "$dir/vmlinuz.tmp" && mv "$dir/vmlinuz.tmp" "$dir/vmlinuz"
  basename "$kernel" > "$dir/version"
fi

# What the test VMs rely on, each built in (=y): modules cannot be loaded
# from the busybox initramfs.
missing=()
for opt in CONFIG_PCI CONFIG_SYSFS CONFIG_DEVTMPFS CONFIG_BLK_DEV_INITRD CONFIG_RD_GZIP \
           CONFIG_SERIAL_8250 CONFIG_SERIAL_8250_CONSOLE CONFIG_PROC_FS; do
  grep -q "^$opt=y" "$dir/config" || missing+=("$opt")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "fetch-kernel: $dir/vmlinuz lacks built-in ${missing[*]}" >&2
  exit 1
fi
echo "$dir/vmlinuz"
