#!/usr/bin/env bash
# Boots a test VM under QEMU (TCG) and exits with the guest command's status.
#
# Usage: vmtest/run-vm.sh --kernel K --initrd I [--region PATH [--bar-size BYTES]]
#                         [--doorbell SOCKET]
#                         [--cmd 'COMMAND'] [--append 'ARGS'] [--timeout S]
#                         [--mem 512M] [--log FILE]
#
#   --kernel K        kernel image (vmtest/fetch-kernel.sh)
#   --initrd I        initramfs (vmtest/build-initramfs.sh)
#   --region PATH     adds an ivshmem-plain device backed by PATH (a region file,
#                     e.g. /dev/shm/NAME); without it the VM has no such device
#   --doorbell SOCKET adds an ivshmem-doorbell device whose server listens on
#                     SOCKET (ava-worker: the region's path + .sock); the
#                     server hands QEMU the memory (no --region then)
#   --bar-size BYTES  the device's size (default: the file's size; a smaller
#                     value gives the guest a BAR smaller than the region)
#   --cmd 'COMMAND'   shell command the guest's /init runs (passed as ava.cmd64=BASE64)
#   --append 'ARGS'   more kernel command-line arguments
#   --timeout S       seconds before QEMU is killed (default 120)
#   --mem SIZE        guest memory (default 512M)
#   --log FILE        serial console log (default: a temporary file, removed)
#
# The console is shown on stdout once the VM is gone. The exit status is the
# `rc=N` of the guest's `AVA-VM-RESULT rc=N` line; 124 if the timeout struck,
# 125 if the guest printed no result. QEMU is killed on any exit of this script.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }
kernel= initrd= region= doorbell= bar_size= cmd= append= timeout=120 mem=512M log=
while [ $# -gt 0 ]; do
  case $1 in
    --kernel) kernel=$2; shift 2 ;;
    --initrd) initrd=$2; shift 2 ;;
    --region) region=$2; shift 2 ;;
    --doorbell) doorbell=$2; shift 2 ;;
    --bar-size) bar_size=$2; shift 2 ;;
    --cmd) cmd=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "run-vm: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$kernel" ] && [ -n "$initrd" ] || { echo "run-vm: --kernel and --initrd are required" >&2; usage; }
[ -r "$kernel" ] || { echo "run-vm: cannot read kernel $kernel" >&2; exit 2; }
[ -r "$initrd" ] || { echo "run-vm: cannot read initramfs $initrd" >&2; exit 2; }
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || { echo "run-vm: qemu-system-x86_64 not found (apt-get install qemu-system-x86)" >&2; exit 2; }

own_log=
if [ -z "$log" ]; then log=$(mktemp); own_log=1; fi
: > "$log"

args=(-machine q35 -accel tcg -m "$mem" -smp 1 -nographic -no-reboot -nic none
      -kernel "$kernel" -initrd "$initrd")
cmdline="console=ttyS0 panic=-1 quiet"
# Base64 lets the command hold any character (quotes included) on the
# kernel command line; the initramfs's /init decodes it.
[ -z "$cmd" ] || cmdline+=" ava.cmd64=$(printf '%s' "$cmd" | base64 -w0)"
[ -z "$append" ] || cmdline+=" $append"
args+=(-append "$cmdline")
if [ -n "$region" ]; then
  [ -e "$region" ] || { echo "run-vm: region $region does not exist" >&2; exit 2; }
  region=$(realpath "$region")
  size=${bar_size:-$(stat -L -c %s "$region")}
  # QEMU option values escape a comma by doubling it.
  args+=(-object "memory-backend-file,id=avashm,size=$size,share=on,mem-path=${region//,/,,}"
         -device ivshmem-plain,memdev=avashm)
fi
if [ -n "$doorbell" ]; then
  [ -S "$doorbell" ] || { echo "run-vm: no ivshmem server listens on $doorbell" >&2; exit 2; }
  args+=(-chardev "socket,path=${doorbell//,/,,},id=avadb"
         -device ivshmem-doorbell,chardev=avadb,vectors=1,ioeventfd=on)
fi

qemu_pid=
cleanup() {
  local rc=$?
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -TERM "$qemu_pid" 2>/dev/null || true
    sleep 0.2
    kill -KILL "$qemu_pid" 2>/dev/null || true
  fi
  [ -z "$own_log" ] || rm -f "$log"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start=$EPOCHREALTIME
"$qemu" "${args[@]}" </dev/null >"$log" 2>&1 &
qemu_pid=$!

timed_out=
deadline=$(( $(date +%s) + timeout ))
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    timed_out=1
    kill -KILL "$qemu_pid" 2>/dev/null || true
    break
  fi
  sleep 0.1
done
wait "$qemu_pid" 2>/dev/null && qemu_rc=0 || qemu_rc=$?
qemu_pid=
elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')

tr -d '\r' < "$log"
result=$(tr -d '\r' < "$log" | sed -n 's/^AVA-VM-RESULT rc=\([0-9][0-9]*\)$/\1/p' | tail -n1)
if [ -n "$timed_out" ]; then
  echo "run-vm: timed out after ${timeout}s; QEMU killed" >&2
  exit 124
fi
if [ -z "$result" ]; then
  echo "run-vm: the guest printed no AVA-VM-RESULT line (QEMU exited with $qemu_rc)" >&2
  exit 125
fi
echo "run-vm: guest rc=$result after ${elapsed}s" >&2
exit "$result"
