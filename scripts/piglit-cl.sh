#!/usr/bin/env bash
# Runs piglit's OpenCL tests (Debian's `piglit` package: unmodified tests
# nobody here wrote) natively and remoted through a real `ava-worker`, and
# prints every test whose remoted result differs from native. The worker
# must outlive every test. Not part of CI: the package installs about 2 GB.
# Usage: bash scripts/piglit-cl.sh [TIMEOUT_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
ensure_packages "${AVA_PACKAGES[@]}" piglit
cargo build --release --locked -p ava-worker -p ava-guestlib
timeout_s="${1:-120}"
bin=/usr/lib/x86_64-linux-gnu/piglit/bin
region=/dev/shm/ava-piglit-$$
vendors=$(mktemp -d)
log=$(mktemp)
rm -f "$region"
AVA_LOG=info ./target/release/ava-worker --region "$region" 2>"$log" &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null; rm -rf "$region" "$vendors"' EXIT
sleep 2
result() { grep -o '"result": "[a-z]*"' | tail -1 | cut -d'"' -f4; }
same=0; differ=0; total=0
printf '%-52s %-8s %-8s\n' test native remoted
for t in $(ls "$bin" | grep '^cl-' | grep -v -e cl-program-tester -e cl-interop); do
  total=$((total + 1))
  n=$(timeout "$timeout_s" "$bin/$t" 2>&1 | result || true)
  r=$(AVA_REGION="$region" LD_PRELOAD="$PWD/target/release/libava_opencl.so" OCL_ICD_VENDORS="$vendors" \
      timeout "$timeout_s" "$bin/$t" 2>&1 | result || true)
  n=${n:-crash}; r=${r:-crash}
  if [ "$n" = "$r" ]; then same=$((same + 1)); else differ=$((differ + 1)); fi
  printf '%-52s %-8s %-8s %s\n' "$t" "$n" "$r" "$([ "$n" = "$r" ] || echo DIFFERS)"
  if ! kill -0 $worker 2>/dev/null; then
    echo "the worker stopped during $t"; tail -20 "$log"; exit 1
  fi
done
echo "tests: $total, same result: $same, different: $differ; the worker ran throughout"
grep -c "executor died" "$log" | sed 's/^/executor deaths (contained, restarted): /' || true
