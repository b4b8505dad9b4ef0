#!/usr/bin/env bash
# Runs the quick starts' commands as a new user would type them, so that the
# documentation cannot drift from what works: every fenced ```sh block of the
# README's "Set up and run" section and of docs/index.md's "Quick start"
# section, in order, each as typed into a fresh terminal at the repository
# root (a block that starts a worker in the background also stops it). A
# command that fails fails the run. A block followed by a fenced ```output
# block must print each non-empty line of it (a fixed string, anywhere in
# the block's output).
#
# Usage: bash scripts/doc-commands.sh            # run them
#        bash scripts/doc-commands.sh --list     # print what would run
#
# `bash scripts/test.sh` runs this at its end; a block that is exactly
# `bash scripts/test.sh` is then skipped (it is that very run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Prints the blocks of section $2 of file $1 as records: "@@sh", the block's
# lines, then optionally "@@output" and the expected lines; "@@end" closes.
extract() {
  awk -v sec="$2" '
    /^## / { insec = (index($0, "## " sec) == 1); next }
    !insec { next }
    /^```sh$/ && !inblk { inblk = "sh"; print "@@sh"; next }
    /^```output$/ && !inblk { inblk = "output"; print "@@output"; next }
    /^```/ && inblk { inblk = ""; print "@@end"; next }
    inblk { print }
  ' "$1"
}

SOURCES=("README.md:Set up and run" "docs/index.md:Quick start")
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Split into numbered blocks: $WORK/N.sh and, where given, $WORK/N.expect.
n=0
for src in "${SOURCES[@]}"; do
  file="${src%%:*}" section="${src#*:}"
  [ -f "$file" ] || { echo "doc-commands: $file is missing" >&2; exit 1; }
  found=0
  cur=""
  while IFS= read -r line; do
    case "$line" in
      "@@sh") n=$((n + 1)); found=1; cur="$WORK/$n.sh"; echo "# $file: $section" > "$cur" ;;
      "@@output") cur="$WORK/$n.expect"; : > "$cur" ;;
      "@@end") cur="" ;;
      *) [ -n "$cur" ] && printf '%s\n' "$line" >> "$cur" ;;
    esac
  done < <(extract "$file" "$section")
  [ "$found" = 1 ] || { echo "doc-commands: no \`\`\`sh block in '$section' of $file" >&2; exit 1; }
done

if [ "${1:-}" = "--list" ]; then
  for i in $(seq "$n"); do cat "$WORK/$i.sh"; [ -f "$WORK/$i.expect" ] && sed 's/^/# prints: /' "$WORK/$i.expect"; echo; done
  exit 0
fi

# check N WHERE OUTPUT: block N's expected lines are all in OUTPUT.
check() {
  [ -f "$WORK/$1.expect" ] || return 0
  while IFS= read -r want; do
    [ -n "$want" ] || continue
    grep -qF -- "$want" "$3" ||
      { echo "doc-commands: block $1 of $2 did not print: $want" >&2; exit 1; }
  done < "$WORK/$1.expect"
  echo "==> [doc $1/$n] printed what the documentation says it prints"
}

declare -A ran=()
for i in $(seq "$n"); do
  body="$(tail -n +2 "$WORK/$i.sh")"
  where="$(head -1 "$WORK/$i.sh" | cut -c3-)"
  if [ "$body" = "bash scripts/test.sh" ] && [ -n "${AVA_IN_TEST_SUITE:-}" ]; then
    echo "==> [doc $i/$n] $where: skipped, this is the test suite's own run: $body"
    continue
  fi
  out="$WORK/$i.out"
  if [ -n "${ran[$body]:-}" ]; then
    echo "==> [doc $i/$n] $where: already ran above (block ${ran[$body]}): $body"
    out="$WORK/${ran[$body]}.out"
    check "$i" "$where" "$out"
    continue
  fi
  ran[$body]=$i
  echo "==> [doc $i/$n] $where"
  sed 's/^/    $ /' <<< "$body"
  # Each block runs on its own, as typed into a fresh terminal, in a session
  # of its own so that nothing it started outlives it.
  : > "$WORK/$i.out"
  setsid timeout 1800 bash -euo pipefail "$WORK/$i.sh" > "$WORK/$i.out" 2>&1 &
  pid=$!
  tail -n +1 --pid="$pid" -f "$WORK/$i.out"
  rc=0
  wait "$pid" || rc=$?
  kill -- -"$pid" 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    echo "doc-commands: block $i of $where failed (exit status $rc)" >&2
    exit 1
  fi
  check "$i" "$where" "$out"
done
echo "==> every quick-start command ran"
