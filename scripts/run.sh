#!/usr/bin/env bash
# What `make run` shows: the demo once it exists; until then the parts that are real.
set -euo pipefail
bin=${1:-bin/smimeproxy}
"$bin" version
if "$bin" demo -h >/dev/null 2>&1; then
  exec "$bin" demo
fi
echo
echo "== smimeproxy config test -config config.example.toml"
"$bin" config test -config config.example.toml || true
for verb in sign verify encrypt decrypt; do
  echo
  echo "== smimeproxy smime $verb -h"
  "$bin" smime "$verb" -h || true
done
