#!/usr/bin/env bash
# Builds the benchmarks in release mode and runs the transport benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --locked -p ava-bench
./target/release/ava-bench transport "$@"
