#!/usr/bin/env bash
# Runs every native Go fuzz target in the module for the given time each.
set -euo pipefail
t=${1:-30s}
cd "$(dirname "$0")/.."
count=0
while IFS= read -r file; do
  pkg=./$(dirname "$file")
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    echo "fuzz: $pkg $target ($t)"
    # A crash the fuzzer finds is saved under testdata/fuzz and fails the
    # retry at once, so one retry only forgives the engine's own hiccups on a
    # loaded machine (e.g. "context deadline exceeded" between workers).
    if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$t" -fuzzminimizetime=2s "$pkg"; then
      echo "fuzz: $pkg $target failed; retrying once"
      go test -run='^$' -fuzz="^${target}\$" -fuzztime="$t" -fuzzminimizetime=2s "$pkg"
    fi
    count=$((count + 1))
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sort)
echo "fuzz: $count targets ran"
