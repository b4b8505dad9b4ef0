#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need,
# builds every crate (the tests run the worker, the guest library and the
# test API as real processes and libraries), then tests the workspace. Every
# test binary runs even when an earlier one fails, so one run shows every
# failure. Last, it runs the quick starts' commands as the documentation
# gives them (scripts/doc-commands.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_packages "${AVA_PACKAGES[@]}"
echo "==> cargo build --workspace"
cargo build --workspace --locked
echo "==> cargo test --workspace --no-fail-fast"
cargo test --workspace --locked --no-fail-fast
echo "==> the documentation's commands (scripts/doc-commands.sh)"
AVA_IN_TEST_SUITE=1 bash scripts/doc-commands.sh
