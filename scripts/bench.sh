#!/usr/bin/env bash
# make bench: Go benchmarks of every package, each reporting its figures beside
# a baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run='^$' -bench=. -benchmem -benchtime=${BENCHTIME:-1x} ./... 2>&1 | tee bin/bench.txt
