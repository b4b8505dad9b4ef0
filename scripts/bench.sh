#!/usr/bin/env bash
# Builds the benchmarks in release mode and runs them: the transport against
# its physical limit and socket baselines, and OpenCL native vs remoted.
# Arguments are passed to both (e.g. --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_packages pocl-opencl-icd ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-headers clinfo gcc
cargo build --release --locked -p ava-bench -p ava-worker -p ava-guestlib
./target/release/ava-bench transport "$@"
./target/release/ava-bench opencl "$@"
