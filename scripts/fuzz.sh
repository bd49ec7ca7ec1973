#!/usr/bin/env bash
# Runs every native Go fuzz target in the module for the given time each.
set -euo pipefail
t=${1:-30s}
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
count=0
while IFS= read -r file; do
  pkg=./$(dirname "$file")
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    echo "fuzz: $pkg $target ($t)"
    # A crash the fuzzer finds is saved under testdata/fuzz and fails at
    # once. Go's fuzzing engine also fails now and then on its own on a
    # loaded machine ("context deadline exceeded" between the coordinator
    # and its workers, no failing input): only that is tried again, up to
    # two more times.
    for attempt in 1 2 3; do
      if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$t" -fuzzminimizetime=2s "$pkg" 2>&1 | tee "$log"; then
        break
      fi
      if [ "$attempt" = 3 ] || ! grep -q 'context deadline exceeded' "$log" || grep -q 'Failing input written to' "$log"; then
        echo "fuzz: $pkg $target failed"
        exit 1
      fi
      echo "fuzz: $pkg $target: fuzzing engine hiccup, trying again"
    done
    count=$((count + 1))
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sort)
echo "fuzz: $count targets ran"
