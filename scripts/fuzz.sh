#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/: the wire decoder, the ring
# consumer, the channels' control words, the OpenCL, CUDA and test-API
# dispatchers' argument decoding, the LAPIS front end, the worker's
# configuration) for SECONDS each (default
# 60) with cargo-fuzz on the nightly toolchain, installing both if needed.
# Outside CI, which runs the same parsers as bounded property tests
# (dispatch_decoding, ring proptests, hostile, hostile_control). A crash leaves its input in
# fuzz/artifacts/TARGET/; keep it as a regression test.
# Usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo +nightly install cargo-fuzz --locked
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
for t in "${targets[@]}"; do
  echo "==> $t for ${seconds}s"
  cargo +nightly fuzz run --fuzz-dir fuzz "$t" -- -max_total_time="$seconds" -rss_limit_mb=4096
done
echo "no crash in ${#targets[@]} targets"
