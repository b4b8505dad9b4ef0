#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need,
# builds every crate (the tests run the worker, the guest library and the
# test API as real processes and libraries), then tests the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_packages "${AVA_PACKAGES[@]}"
echo "==> cargo build --workspace"
cargo build --workspace --locked
echo "==> cargo test --workspace"
cargo test --workspace --locked
