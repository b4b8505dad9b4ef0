#!/usr/bin/env bash
# Builds a busybox initramfs for the test VMs.
#
# Usage: vmtest/build-initramfs.sh OUT.cpio.gz [FILE[=GUEST_PATH]...]
#
# The image holds a static busybox, the given files and, for each dynamic
# executable among them, the shared libraries that `ldd` resolves (each at
# the same path as on the host). A FILE is placed at its own absolute path,
# or at GUEST_PATH when one is given (e.g. target/debug/ivshmem-setup=/bin/ivshmem-setup).
#
# Its /init mounts /proc, /sys and /dev (devtmpfs), then runs, with `sh -c`:
#   - the command on the kernel command line, if any: `ava.cmd64=BASE64`
#     (any characters; vmtest/run-vm.sh --cmd passes it so) or
#     `ava.cmd="COMMAND"` (no double quotes inside), else
#   - /test.sh, if the image has one (pass SCRIPT=/test.sh), else
#   - nothing (rc=127).
# Then it prints the marker line `AVA-VM-RESULT rc=N` on the console and
# powers the VM off. vmtest/run-vm.sh parses that marker.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }
[ $# -ge 1 ] || usage
case $1 in -h|--help) usage ;; esac
out=$1; shift

busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "build-initramfs: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then
  echo "build-initramfs: $busybox is dynamically linked; install busybox-static" >&2
  exit 1
fi
command -v cpio >/dev/null || { echo "build-initramfs: cpio not found (apt-get install cpio)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc}
cp "$busybox" "$root/bin/busybox"

# Copies host file $1 to guest path $2 (following symlinks).
put() {
  mkdir -p "$root$(dirname "$2")"
  cp -L "$1" "$root$2"
}

# Copies the shared libraries (and the program interpreter) of $1.
put_libs() {
  local lib
  # ldd prints "libx.so => /path/libx.so (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)".
  # A static executable lists none ("statically linked").
  { ldd "$1" 2>/dev/null || true; } | { grep -oE '(^|[[:space:]])/[^[:space:]]+' || true; } \
    | tr -d '[:blank:]' | while read -r lib; do
    [ -e "$root$lib" ] || put "$lib" "$lib"
  done
}

for spec in "$@"; do
  src=${spec%%=*}
  if [ "$spec" != "$src" ]; then dst=${spec#*=}; else dst=$(realpath "$src"); fi
  [ -e "$src" ] || { echo "build-initramfs: $src does not exist" >&2; exit 1; }
  case $dst in /*) ;; *) echo "build-initramfs: guest path '$dst' must be absolute" >&2; exit 1 ;; esac
  put "$src" "$dst"
  if [ -x "$src" ] && ldd "$src" >/dev/null 2>&1; then
    put_libs "$src"
  fi
done

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root NO_COLOR=1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
# The kernel may have found no /dev/console in the image: take it now.
exec </dev/console >/dev/console 2>&1
cmdline=$(cat /proc/cmdline)
cmd=$(printf '%s\n' "$cmdline" | sed -n 's/.*ava\.cmd64=\([A-Za-z0-9+\/=]*\).*/\1/p' | base64 -d 2>/dev/null)
[ -n "$cmd" ] || cmd=$(printf '%s\n' "$cmdline" | sed -n 's/.*ava\.cmd="\([^"]*\)".*/\1/p')
[ -n "$cmd" ] || cmd=$(printf '%s\n' "$cmdline" | sed -n 's/.*ava\.cmd=\([^" ][^ ]*\).*/\1/p')
echo "AVA-VM-START"
if [ -n "$cmd" ]; then
  echo "+ $cmd"
  sh -c "$cmd"
  rc=$?
elif [ -f /test.sh ]; then
  echo "+ /test.sh"
  sh /test.sh
  rc=$?
else
  echo "init: no ava.cmd= on the kernel command line and no /test.sh"
  rc=127
fi
echo "AVA-VM-RESULT rc=$rc"
sync
poweroff -f
INIT
chmod 755 "$root/init"

mkdir -p "$(dirname "$out")"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet -R 0:0) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
