#!/usr/bin/env bash
# Builds the benchmarks in release mode and runs them all with
# `ava-bench all` (the transport against its physical limit and socket
# baselines, OpenCL native vs remoted, scaling with the number of guests,
# idle cost, CUDA on the host's driver or the stand-in test double), which
# writes bench-report/results.json and bench-report/report.md with plots;
# then clpeak (all of its tests) natively and remoted.
# Arguments are passed to `ava-bench all` (e.g. --quick, --out DIR,
# --docs FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_packages pocl-opencl-icd ocl-icd-libopencl1 ocl-icd-opencl-dev opencl-headers clinfo gcc clpeak
cargo build --release --locked -p ava-bench -p ava-worker -p ava-guestlib \
  -p ava-guestlib-cuda -p ava-cuda-standin
./target/release/ava-bench all "$@"
# clpeak (all of its tests) natively and remoted, with a heap that holds its
# 512 MiB buffers.
./target/release/ava-bench clpeak --heap-size 1610612736
