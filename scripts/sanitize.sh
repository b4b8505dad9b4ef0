#!/usr/bin/env bash
# Memory checks outside CI, on the nightly toolchain (installed with its
# components if missing):
# - Miri runs the unit tests of the transport (rings, arenas, layout, bells,
#   waits) and of remoting (wire format, handle tables, heap, guest objects)
#   on memory Miri allocates: every unsafe access is checked for bounds,
#   alignment, use after free and data races. Tests that map /dev/shm files
#   or start processes are outside what Miri can run, so the integration
#   tests are left to the second step. Property tests run 4 cases each
#   under Miri (PROPTEST_CASES overrides). Leaks are not reported: a region
#   under Miri is memory leaked on purpose (see transport/src/shm.rs).
#   Weak-memory emulation is off (data races are still checked): Miri
#   (1.97.0-nightly of 2026-05-19) panics on a ring's words, written as plain bytes
#   and later read atomically, when it is on.
# - AddressSanitizer runs the transport's and remoting's whole test suites,
#   integration tests included (regions in /dev/shm, two processes), with
#   their code instrumented.
# Usage: bash scripts/sanitize.sh [miri|asan]   (both by default)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
if [ "$what" = all ] || [ "$what" = miri ]; then
  rustup +nightly component add miri rust-src >/dev/null
  echo "==> Miri: unit tests of ava-transport and ava-remoting"
  # Miri interprets every instruction: property tests run a few cases
  # (PROPTEST_CASES, default 4 here) instead of proptest's 256.
  PROPTEST_CASES="${PROPTEST_CASES:-4}" \
    MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation -Zmiri-ignore-leaks -Zmiri-disable-weak-memory-emulation}" \
    cargo +nightly miri test --no-fail-fast -p ava-transport -p ava-remoting --lib
fi
if [ "$what" = all ] || [ "$what" = asan ]; then
  echo "==> AddressSanitizer: every test of ava-transport and ava-remoting"
  RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
    ASAN_OPTIONS="detect_leaks=0" \
    cargo +nightly test --target x86_64-unknown-linux-gnu --target-dir target/asan \
    -p ava-transport -p ava-remoting --tests
fi
echo "sanitize: done"
