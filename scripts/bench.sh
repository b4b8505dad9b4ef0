#!/usr/bin/env bash
# Builds the benchmarks in release mode and runs them: the transport against
# its physical limit and socket baselines, OpenCL native vs remoted, and
# scaling with the number of guests, idle cost, and clpeak.
# Arguments are passed to each (e.g. --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_packages pocl-opencl-icd ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-headers clinfo gcc clpeak
cargo build --release --locked -p ava-bench -p ava-worker -p ava-guestlib
./target/release/ava-bench transport "$@"
./target/release/ava-bench opencl "$@"
./target/release/ava-bench scaling "$@"
./target/release/ava-bench idle "$@"
# clpeak (all of its tests) natively and remoted, with a heap that holds its
# 512 MiB buffers.
./target/release/ava-bench clpeak --heap-size 1610612736
