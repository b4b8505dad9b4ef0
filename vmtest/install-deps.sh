#!/usr/bin/env bash
# Installs what the VM tests need, if missing: QEMU (TCG is enough), a static
# busybox and cpio, from Debian/Ubuntu packages. Needs root (or sudo).
#
# Usage: vmtest/install-deps.sh
set -euo pipefail
case ${1:-} in -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then need+=(busybox-static); fi
command -v cpio >/dev/null || need+=(cpio)
# The kernel is fetched with apt-get download and unpacked with dpkg -x.
command -v dpkg-deb >/dev/null || need+=(dpkg)
[ ${#need[@]} -gt 0 ] || exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install ${need[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: apt-get install ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
