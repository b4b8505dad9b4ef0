#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need,
# then builds and tests every crate of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
echo "==> cargo test --workspace"
cargo test --workspace --locked
