#!/usr/bin/env bash
# The main job, end to end on a fresh machine: installs PoCL and the OpenCL
# tools, builds the worker and the guest library, starts the worker on a
# shared-memory region, runs unmodified `clinfo` and a sample OpenCL program
# through the guest library (beside the same program run natively), shows the
# per-call latency, and stops the worker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_packages pocl-opencl-icd ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-headers clinfo gcc

echo "==> building (release)"
cargo build --release --locked -p ava-worker -p ava-guestlib -p ava-bench
GUESTLIB="$PWD/target/release/libava_opencl.so"
REGION="/dev/shm/ava-demo-$$"
WORK="$(mktemp -d)"
cleanup() {
  [ -n "${WORKER_PID:-}" ] && kill "$WORKER_PID" 2>/dev/null && wait "$WORKER_PID" 2>/dev/null
  rm -rf "$REGION" "$WORK"
}
trap cleanup EXIT

echo "==> starting ava-worker on $REGION"
AVA_LOG=info ./target/release/ava-worker --region "$REGION" 2> "$WORK/worker.log" &
WORKER_PID=$!
# Ready once its executor serves the region (created, formatted, leased):
# the file alone can exist before its header is written.
for _ in $(seq 300); do grep -q "serving region=" "$WORK/worker.log" 2>/dev/null && break; sleep 0.1; done
grep -q "serving region=" "$WORK/worker.log" || { echo "the worker did not start:"; cat "$WORK/worker.log"; exit 1; }

echo
echo "==> clinfo -l, natively and through the guest library"
clinfo -l
echo "--- remoted:"
AVA_REGION="$REGION" LD_PRELOAD="$GUESTLIB" clinfo -l
AVA_REGION="$REGION" LD_PRELOAD="$GUESTLIB" clinfo > "$WORK/clinfo.remote"
clinfo > "$WORK/clinfo.native"
# The guest library is not an ICD loader: clinfo prints no loader section.
platform_part() { sed '/^ICD loader properties/,$d' "$1" | sed '/^$/d'; }
if diff <(platform_part "$WORK/clinfo.native") <(platform_part "$WORK/clinfo.remote") > /dev/null; then
  echo "full clinfo output: remoted == native ($(wc -l < "$WORK/clinfo.remote") lines)"
else
  echo "full clinfo output differs:"; diff "$WORK/clinfo.native" "$WORK/clinfo.remote" || true
fi

echo
echo "==> a sample program (samples/opencl/vecadd.c), natively and remoted"
cc -O2 -std=c11 -DCL_TARGET_OPENCL_VERSION=300 -o "$WORK/vecadd" samples/opencl/vecadd.c -lOpenCL -lm
echo "--- native:";  "$WORK/vecadd"
echo "--- remoted:"; AVA_REGION="$REGION" LD_PRELOAD="$GUESTLIB" "$WORK/vecadd"

echo
echo "==> per-call latency, native vs remoted (ava-bench opencl --quick)"
./target/release/ava-bench opencl --quick 2>/dev/null | grep -E "name|query|launch|enqueue"

echo
echo "==> worker log"
tail -n 5 "$WORK/worker.log"
