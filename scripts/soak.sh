#!/usr/bin/env bash
# Soak test: one ava-worker serving OpenCL (the host's OpenCL library, PoCL
# by default) and CUDA (the stand-in driver, libava_cuda_standin.so) on
# three regions in /dev/shm, and for MINUTES (default 30) several guests in
# a loop with a mixed workload: samples/opencl/vecadd.c and events.c through
# libava_opencl.so, and the unmodified cudarc client through libava_cuda.so,
# each on a region chosen at random. Now and then a guest is killed with
# SIGKILL in the middle of its run (AVA_SOAK_KILL_PERCENT of the runs,
# default 20), which the worker must notice (--stale-after) and clean up.
#
# After a warm-up (one minute, or half the run if shorter) and at the end,
# the guests are paused until every channel is free again, and the worker's
# executors are measured (RSS and open file descriptors, from /proc), with
# the device memory each VM still holds (from --metrics). The RSS compared
# is the executor's own memory (VmRSS less RssShmem): pages of the regions
# it maps count in VmRSS as they are first touched, and the buffer heap
# hands out more of them as guests come and go, which is not a leak. The worker's log
# gives the cleanups: handles freed when a guest's channel ends
# ("guest released its channel ... freed=N"), channels reclaimed from dead
# guests ("guest stopped beating"), CUDA memory freed after them ("freeing
# the CUDA memory a guest left").
#
# Exits non-zero when a guest that was not killed failed (or hung), when an
# executor's own RSS grew by more than 5% or its open descriptors grew between
# the warm-up and the end, when an executor died or the worker stopped, or
# when a VM still holds device memory once all its guests are gone.
#
# Uses the binaries already built: target/release when it holds the
# worker, both guest libraries and the stand-in, else target/debug
# (`cargo build --workspace`); cudarc-client from either.
#
# Usage: bash scripts/soak.sh [MINUTES]
# Environment: AVA_SOAK_GUESTS (guest loops at once, default 3),
# AVA_SOAK_KILL_PERCENT (default 20), AVA_SOAK_KINDS (e.g. vecadd,events or
# cudarc: only those guests), AVA_SOAK_KEEP=1 (keep the temporary
# directory with the worker's log even when the soak passes).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

minutes="${1:-30}"
if ! [[ "$minutes" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash scripts/soak.sh [MINUTES]   (a whole number of minutes, default 30)" >&2
  exit 2
fi
guests="${AVA_SOAK_GUESTS:-3}"
kill_percent="${AVA_SOAK_KILL_PERCENT:-20}"
stale=5                # the worker's --stale-after (seconds)
guest_timeout=180      # a guest running longer than this counts as hung
rss_limit_percent=5

# --- binaries -------------------------------------------------------------
has_all() {
  local d=$1 f
  for f in ava-worker libava_opencl.so libava_cuda.so libava_cuda_standin.so; do
    [ -e "$d/$f" ] || return 1
  done
}
if has_all target/release; then
  bin=$root/target/release
elif has_all target/debug; then
  bin=$root/target/debug
else
  echo "soak: no build found: run \`cargo build --workspace\` (or --release)" >&2
  exit 2
fi
worker=$bin/ava-worker
standin=$bin/libava_cuda_standin.so
cudarc=""
for d in "$bin" "$root/target/release" "$root/target/debug"; do
  if [ -x "$d/cudarc-client" ]; then cudarc=$d/cudarc-client; break; fi
done
kinds=(vecadd events)
if [ -n "$cudarc" ]; then
  kinds+=(cudarc)
else
  echo "soak: cudarc-client not built: CUDA guests left out" >&2
fi
if [ -n "${AVA_SOAK_KINDS:-}" ]; then
  # Only these kinds of guest (to tell which workload an executor's growth
  # comes with).
  IFS=, read -r -a wanted <<<"$AVA_SOAK_KINDS"
  for k in "${wanted[@]}"; do
    [[ " ${kinds[*]} " == *" $k "* ]] || { echo "soak: no guest kind '$k' (have: ${kinds[*]})" >&2; exit 2; }
  done
  kinds=("${wanted[@]}")
fi

# --- state and cleanup ----------------------------------------------------
tmp=$(mktemp -d /tmp/ava-soak.XXXXXX)
regions=(/dev/shm/ava-soak-$$-1 /dev/shm/ava-soak-$$-2 /dev/shm/ava-soak-$$-3)
wpid=""
slots=()
status=1

cleanup() {
  set +e
  touch "$tmp/stop" 2>/dev/null
  local p c
  # The guests' `timeout` wrappers (children of the loops), the guests
  # themselves, then the loops.
  local wrappers=()
  for p in "${slots[@]}"; do
    for c in $(pgrep -P "$p" 2>/dev/null); do wrappers+=("$c"); done
  done
  for p in "$tmp"/pid.*; do
    [ -e "$p" ] && kill -9 "$(cat "$p" 2>/dev/null)" 2>/dev/null
  done
  for p in "${wrappers[@]}" "${slots[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${slots[@]}"; do wait "$p" 2>/dev/null; done
  if [ -n "$wpid" ] && kill -0 "$wpid" 2>/dev/null; then
    local executors
    executors=$(pgrep -P "$wpid" 2>/dev/null)
    kill -TERM "$wpid" 2>/dev/null
    for _ in $(seq 150); do
      kill -0 "$wpid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$wpid" 2>/dev/null; then
      kill -9 "$wpid" $executors 2>/dev/null
    fi
    wait "$wpid" 2>/dev/null
  fi
  rm -f "${regions[@]}"
  if [ -n "$wpid" ]; then
    rm -f "/dev/shm/ava-ledger-$wpid" "/dev/shm/ava-in-flight-$wpid-"*
  fi
  if [ "$status" -eq 0 ] && [ "${AVA_SOAK_KEEP:-0}" != 1 ]; then
    rm -rf "$tmp"
  else
    echo "soak: kept $tmp (worker log: $tmp/worker.log)"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

worker_alive() { kill -0 "$wpid" 2>/dev/null; }

die() {
  echo "soak: $*" >&2
  if [ -s "$tmp/worker.log" ]; then
    echo "--- last lines of the worker's log:" >&2
    tail -n 30 "$tmp/worker.log" >&2
  fi
  exit 1
}

# --- guests ---------------------------------------------------------------
mkdir -p "$tmp/bin" "$tmp/out" "$tmp/novendors" "$tmp/cuda"
for s in vecadd events; do
  # As worker/tests/common/mod.rs `build_sample` compiles them.
  cc -O2 -std=c11 -Wall -D_GNU_SOURCE -DCL_TARGET_OPENCL_VERSION=300 \
    -o "$tmp/bin/$s" "samples/opencl/$s.c" -lOpenCL -lpthread -lm ||
    die "compiling samples/opencl/$s.c failed (OpenCL headers and ICD loader installed?)"
done
ln -s "$bin/libava_cuda.so" "$tmp/cuda/libcuda.so.1"
ln -s "$bin/libava_cuda.so" "$tmp/cuda/libcuda.so"

# Runs guest KIND on region R in the background, under `timeout`, writing
# the guest's own pid to PIDFILE; prints nothing (the caller takes $!).
# OCL_ICD_VENDORS names an empty directory, so the ICD loader the samples
# link finds no native platform, as inside a VM.
launch() {
  local kind=$1 region=$2 pidfile=$3 out=$4
  local wrap=(timeout -k 5 "$guest_timeout" bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile")
  case $kind in
    vecadd | events)
      "${wrap[@]}" env AVA_REGION="$region" LD_PRELOAD="$bin/libava_opencl.so" \
        OCL_ICD_VENDORS="$tmp/novendors" "$tmp/bin/$kind" >"$out" 2>&1 &
      ;;
    cudarc)
      "${wrap[@]}" env AVA_REGION="$region" LD_LIBRARY_PATH="$tmp/cuda" \
        "$cudarc" "$root/samples/cuda/kernels.ptx" >"$out" 2>&1 &
      ;;
  esac
}

# One guest loop: a random workload on a random region, one after the
# other, until $tmp/stop; idle while $tmp/pause exists.
slot() {
  set +e
  local n=$1 i=0
  while [ ! -e "$tmp/stop" ]; do
    if [ -e "$tmp/pause" ]; then
      touch "$tmp/idle.$n"
      sleep 0.2
      continue
    fi
    rm -f "$tmp/idle.$n"
    i=$((i + 1))
    local kind=${kinds[RANDOM % ${#kinds[@]}]}
    local r=$((RANDOM % 3))
    local out="$tmp/out/$n-$i-$kind-vm$((r + 1)).txt"
    local pidfile="$tmp/pid.$n"
    rm -f "$pidfile"
    launch "$kind" "${regions[$r]}" "$pidfile" "$out"
    local wrapper=$! killed=0
    if ((RANDOM % 100 < kill_percent)); then
      # Somewhere in the guest's run (they take tens to hundreds of ms).
      sleep "0.$(printf '%03d' $((RANDOM % 300)))"
      local g
      g=$(cat "$pidfile" 2>/dev/null)
      if [ -n "$g" ] && kill -9 "$g" 2>/dev/null; then
        killed=1
        echo "$g" >>"$tmp/killed"
      fi
    fi
    local rc=0
    wait "$wrapper" || rc=$?
    rm -f "$pidfile"
    local verdict
    if [ "$rc" -eq 0 ]; then
      verdict=ok
    elif [ "$rc" -eq 137 ] && [ "$killed" -eq 1 ]; then
      verdict=killed
    elif [ "$rc" -eq 124 ]; then
      verdict=hung
    else
      verdict=failed
    fi
    echo "$kind vm$((r + 1)) rc=$rc $verdict $out" >>"$tmp/results"
    case $verdict in
      ok | killed) rm -f "$out" ;;
    esac
    sleep 0.05
  done
}

# --- measuring ------------------------------------------------------------
port=""
for _ in $(seq 20); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done

metrics() {
  [ -n "$port" ] || return 0
  curl -s --max-time 5 "http://127.0.0.1:$port/metrics" 2>/dev/null || true
}

# Sum of a per-VM gauge over every VM.
gauge_sum() {
  metrics | awk -v m="$1" '$1 ~ "^"m"[{]" { s += $2 } END { printf "%d\n", s }'
}

# "GROUP PID" of each executor of the worker.
executors() {
  local p args
  for p in $(pgrep -P "$wpid" 2>/dev/null); do
    args=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
    if [[ "$args" =~ --executor\ ([^ ]+) ]]; then
      echo "${BASH_REMATCH[1]} $p"
    fi
  done
}

# "OWN SHARED": the process's resident memory less the shared memory it
# maps (VmRSS - RssShmem), and that shared memory, in KiB.
rss_kb() {
  awk '/^VmRSS:/ { r = $2 } /^RssShmem:/ { s = $2 } END { printf "%d %d\n", r - s, s }' \
    "/proc/$1/status" 2>/dev/null || echo "0 0"
}
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# Records LABEL: per executor (and the supervisor) pid, own RSS, shared
# RSS and open fds;
# and each VM's device memory held, from the metrics.
sample() {
  local label=$1 g p
  while read -r g p; do
    echo "$label $g $p $(rss_kb "$p") $(fds "$p")" >>"$tmp/samples"
  done < <(executors)
  echo "$label supervisor $wpid $(rss_kb "$wpid") $(fds "$wpid")" >>"$tmp/samples"
  metrics | grep -E '^ava_vm_(memory_bytes|channels|processes)[{]' |
    sed "s/^/$label /" >>"$tmp/metrics" || true
}

# Pauses the guest loops, waits until every guest is gone and every
# channel is free again (a killed guest's after --stale-after), and
# measures.
quiesce_and_sample() {
  local label=$1 n t
  touch "$tmp/pause"
  t=$SECONDS
  for n in $(seq "$guests"); do
    while [ ! -e "$tmp/idle.$n" ] && [ ! -e "$tmp/done.$n" ]; do
      worker_alive || die "the worker stopped"
      ((SECONDS - t < guest_timeout + 30)) || die "guest loop $n did not pause"
      sleep 0.2
    done
  done
  wait_channels_free
  sample "$label"
}

# Every executor's thread stacks (where a channel that does not end waits),
# when gdb is there.
dump_stacks() {
  command -v gdb >/dev/null || { echo "gdb is not installed"; return; }
  local pid
  for pid in $(pgrep -P "$wpid"); do
    echo "== executor $pid: $(tr '\0' ' ' < /proc/$pid/cmdline | grep -o -- '--executor [^ ]*')"
    gdb -p "$pid" -batch -ex "thread apply all bt" 2>/dev/null | grep -E "^Thread|^#" | head -400
  done
}

wait_channels_free() {
  local t=$SECONDS
  if [ -n "$port" ]; then
    while (($(gauge_sum ava_vm_channels) > 0 || $(gauge_sum ava_vm_processes) > 0)); do
      worker_alive || die "the worker stopped"
      ((SECONDS - t < 60)) || {
        echo "soak: channels still claimed after 60 s; the executors' threads: $tmp/stacks.txt" >&2
        dump_stacks > "$tmp/stacks.txt" 2>&1
        break
      }
      sleep 0.5
    done
    # Destructor callbacks (memory credited back) follow the releases.
    sleep 1
  else
    sleep $((stale + 3))
  fi
}

# --- the worker -----------------------------------------------------------
rm -f "${regions[@]}"
wargs=(--backends opencl,cuda --cuda-lib "$standin" --channels 12 --arena-size 4194304
  --stale-after "$stale")
for r in "${regions[@]}"; do wargs+=(--region "$r"); done
[ -n "$port" ] && wargs+=(--metrics "127.0.0.1:$port")
AVA_LOG=info "$worker" "${wargs[@]}" >"$tmp/worker.log" 2>&1 &
wpid=$!
t=$SECONDS
while (($(grep -c 'serving region=' "$tmp/worker.log" || true) < ${#regions[@]})); do
  worker_alive || die "the worker did not start"
  ((SECONDS - t < 60)) || die "the worker did not serve its regions within 60 s"
  sleep 0.2
done
grep -q 'CUDA backend loaded' "$tmp/worker.log" || die "the CUDA backend did not load"

echo "soak: ${minutes} min, worker $worker (pid $wpid), ${#regions[@]} regions, $guests guest loops (${kinds[*]}), ${kill_percent}% of runs killed"

# Preflight: every workload once, unkilled, so that a setup problem (a
# guest library of another specification revision, a missing package) is
# not mistaken for a soak failure.
for kind in "${kinds[@]}"; do
  launch "$kind" "${regions[0]}" "$tmp/pid.preflight" "$tmp/preflight-$kind.txt"
  rc=0
  wait $! || rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$tmp/preflight-$kind.txt" >&2
    die "preflight: $kind failed (rc=$rc) before the soak started"
  fi
done
rm -f "$tmp/pid.preflight"

# --- the run --------------------------------------------------------------
total=$((minutes * 60))
warm=$((total / 2 < 60 ? total / 2 : 60))
start=$SECONDS
for n in $(seq "$guests"); do
  (
    slot "$n"
    touch "$tmp/done.$n"
  ) 2>>"$tmp/slots.err" &
  slots+=($!)
done

run_until() {
  while ((SECONDS - start < $1)); do
    worker_alive || die "the worker stopped during the soak"
    sleep 1
  done
}

run_until "$warm"
quiesce_and_sample warm
echo "soak: warm-up measured at $((SECONDS - start)) s; running until $((total)) s"
rm -f "$tmp/pause" "$tmp"/idle.*
run_until "$total"
touch "$tmp/stop"
for p in "${slots[@]}"; do wait "$p" 2>/dev/null || true; done
slots=()
worker_alive || die "the worker stopped during the soak"
wait_channels_free
sample end
elapsed=$((SECONDS - start))

# --- summary --------------------------------------------------------------
# Counting from here on: a pattern that matches nothing is a count of 0.
set +e +o pipefail
fail=()
touch "$tmp/results"
count() { awk -v k="$1" -v v="$2" '($1 == k || k == "") && $4 == v' "$tmp/results" | wc -l; }
runs=$(wc -l <"$tmp/results")
echo
echo "== soak summary ($elapsed s of guests, worker pid $wpid, $(basename "$bin") build)"
printf 'guests run: %d' "$runs"
for k in "${kinds[@]}"; do printf ', %s %d' "$k" "$(awk -v k="$k" '$1 == k' "$tmp/results" | wc -l)"; done
echo
printf '  ok %d, killed with SIGKILL %d, failed %d, hung %d\n' \
  "$(count "" ok)" "$(count "" killed)" "$(count "" failed)" "$(count "" hung)"
bad=$(awk '$4 == "failed" || $4 == "hung"' "$tmp/results")
if [ -n "$bad" ]; then
  fail+=("$(echo "$bad" | wc -l) guest(s) that were not killed failed")
  echo "  failures (kind, VM, exit status, output):"
  echo "$bad" | head -n 10 | while read -r k vm rc v out; do
    echo "    $k $vm $rc $v: $(tail -n 3 "$out" 2>/dev/null | tr '\n' ' ')"
  done
fi

log=$tmp/worker.log
attached=$(grep -c 'guest attached' "$log" || true)
released=$(grep -c 'guest released its channel' "$log" || true)
stopped=$(grep -c 'guest stopped beating' "$log" || true)
corrupt=$(grep -c 'corrupted its channel' "$log" || true)
freed=$(grep -o 'guest released its channel .* freed=[0-9]*' "$log" | sed 's/.*freed=//' |
  awk '{ s += $1; if ($1 > m) m = $1 } END { printf "%d %d\n", s, m }')
cuda_freed=$(grep 'freeing the CUDA memory a guest left' "$log" | grep -o 'allocations=[0-9]*' |
  sed 's/.*=//' | awk '{ n++; s += $1 } END { printf "%d %d\n", n, s }')
died=$(grep -c 'executor died' "$log" || true)
echo "worker log: $attached channels attached, $released ended (${stopped} taken back from dead guests after --stale-after ${stale}s), $corrupt corrupted"
echo "  handles freed at cleanups: ${freed% *} in all, at most ${freed#* } at once"
echo "  CUDA memory freed after guests that left it: ${cuda_freed% *} guests, ${cuda_freed#* } allocations"
echo "  executor deaths: $died"
((died == 0)) || fail+=("$died executor death(s)")
((corrupt == 0)) || fail+=("$corrupt channel(s) corrupted")

echo "processes (own RSS MiB / open fds):    warm-up           end        change   (regions' pages resident at the end)"
while read -r label name pid rss shm nfd; do
  [ "$label" = warm ] || continue
  end_line=$(awk -v n="$name" '$1 == "end" && $2 == n' "$tmp/samples")
  if [ -z "$end_line" ]; then
    echo "  $name (pid $pid): gone at the end"
    fail+=("executor $name gone at the end")
    continue
  fi
  read -r _ _ epid erss eshm enfd <<<"$end_line"
  growth=$(awk -v a="$rss" -v b="$erss" 'BEGIN { printf "%+.1f", (a > 0 ? (b - a) * 100 / a : 0) }')
  printf '  %-32s %7.1f / %-4d %7.1f / %-4d %6s%% / %+d   (%.1f MiB)\n' "$name (pid $epid)" \
    "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$nfd" \
    "$(awk -v k="$erss" 'BEGIN { print k / 1024 }')" "$enfd" "$growth" $((enfd - nfd)) \
    "$(awk -v k="$eshm" 'BEGIN { print k / 1024 }')"
  if [ "$name" = supervisor ]; then continue; fi
  if [ "$epid" != "$pid" ]; then
    fail+=("executor $name restarted (pid $pid, then $epid)")
    continue
  fi
  if awk -v g="$growth" -v l="$rss_limit_percent" 'BEGIN { exit !(g > l) }'; then
    fail+=("executor $name: RSS grew by $growth% (limit $rss_limit_percent%)")
  fi
  if ((enfd > nfd)); then
    fail+=("executor $name: open fds grew from $nfd to $enfd")
  fi
done <"$tmp/samples"

if [ -s "$tmp/metrics" ]; then
  echo "device memory held (bytes) with no guest left, per VM:"
  for label in warm end; do
    printf '  %-8s' "$label"
    awk -v l="$label" '$1 == l && $2 ~ /^ava_vm_memory_bytes/ {
        match($2, /vm="[^"]*"/); printf " %s=%s", substr($2, RSTART + 4, RLENGTH - 5), $3 }' "$tmp/metrics"
    echo
  done
  held=$(awk '$1 == "end" && $2 ~ /^ava_vm_memory_bytes/ && $3 > 0' "$tmp/metrics" | wc -l)
  ((held == 0)) || fail+=("$held VM(s) still hold device memory with no guest")
fi

if ((${#fail[@]} == 0)); then
  echo "result: PASS"
  status=0
else
  echo "result: FAIL"
  for f in "${fail[@]}"; do echo "  - $f"; done
  status=1
fi
exit "$status"
