#!/usr/bin/env bash
# The CUDA checks on a machine with an NVIDIA GPU and its driver: the
# unmodified clients (cudarc, cuda-python) run natively on the real driver
# and remoted through libava_cuda.so and a real ava-worker on the same
# driver, and their outputs must be equal; then `ava-bench cuda --quick`.
#
#   bash scripts/gpu-check.sh            # builds what is missing (release)
#   AVA_BIN=/path/to/bin bash scripts/gpu-check.sh   # prebuilt binaries
#
# Needs: the NVIDIA driver (libcuda.so.1), and either prebuilt binaries in
# $AVA_BIN (ava-worker, libava_cuda.so, cudarc-client, ava-bench) or cargo.
# cuda-python is used when `python3 -c 'import cuda.bindings'` works (or
# scripts/cuda-python.sh can install it).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${AVA_BIN:-target/release}
fail=0
step() { echo; echo "==> $*"; }

step "the machine"
nvidia-smi -L 2>&1 || echo "nvidia-smi: not available"
uname -r
DRIVER=${AVA_CUDA_LIB:-$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 /{print $NF; exit}')}
if [ -z "$DRIVER" ] || [ ! -e "$DRIVER" ]; then
    echo "no CUDA driver (libcuda.so.1) on this machine: nothing to check"
    exit 1
fi
echo "driver: $DRIVER"

if [ ! -x "$BIN/ava-worker" ] || [ ! -e "$BIN/libava_cuda.so" ] || [ ! -x "$BIN/cudarc-client" ] || [ ! -x "$BIN/ava-bench" ]; then
    step "cargo build --release (worker, CUDA guest library, clients, benchmarks)"
    cargo build --release -p ava-worker -p ava-guestlib-cuda -p ava-cuda-clients -p ava-bench || exit 1
fi

region=/dev/shm/ava-gpu-check-$$
guestdir=$(mktemp -d)
ln -sf "$(realpath "$BIN/libava_cuda.so")" "$guestdir/libcuda.so.1"
ln -sf "$(realpath "$BIN/libava_cuda.so")" "$guestdir/libcuda.so"
log=$(mktemp)
step "ava-worker --backends cuda --cuda-lib $DRIVER"
AVA_LOG=info "$BIN/ava-worker" --region "$region" --backends cuda --cuda-lib "$DRIVER" 2>"$log" &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null; rm -rf "$guestdir" "$region"' EXIT
for _ in $(seq 100); do grep -q "serving region=" "$log" && break; sleep 0.1; done
grep -E "CUDA backend|serving" "$log"

compare() { # name, native command..., then remoted with the guest library
    local name=$1; shift
    local native remoted
    native=$("$@" 2>&1); local rn=$?
    remoted=$(AVA_REGION=$region LD_LIBRARY_PATH=$guestdir "$@" 2>&1); local rr=$?
    echo "--- $name natively (exit $rn)"; echo "$native"
    echo "--- $name remoted (exit $rr)"; echo "$remoted"
    if [ $rn -eq 0 ] && [ $rr -eq 0 ] && [ "$native" = "$remoted" ]; then
        echo "PASS: $name gives the same output remoted"
    else
        echo "FAIL: $name differs remoted"; fail=1
    fi
}

step "cudarc client"
compare cudarc-client "$BIN/cudarc-client" samples/cuda/kernels.ptx

step "cuda-python client"
if /usr/bin/env python3 -c 'import cuda.bindings' 2>/dev/null || bash scripts/cuda-python.sh >/dev/null 2>&1; then
    compare cuda-python python3 samples/cuda/cuda_python_client.py
    # Unified, 2D and 3D copies, cuLaunchKernelEx, memory pools, libraries
    # and entry points; then the same with the per-thread default stream.
    compare cuda-python-features python3 samples/cuda/cuda_python_features.py
    compare cuda-python-features-per-thread \
        env CUDA_PYTHON_CUDA_PER_THREAD_DEFAULT_STREAM=1 python3 samples/cuda/cuda_python_features.py
else
    echo "cuda-python is not installed and cannot be: not checked"
fi

step "ava-bench cuda --quick"
"$BIN/ava-bench" cuda --quick --native-lib "$DRIVER" || fail=1

step "worker log (warnings and errors)"
grep -E "WARN|ERROR" "$log" | tail -20 || true
exit $fail
