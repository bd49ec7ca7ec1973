#!/usr/bin/env bash
# What `make run` shows: the one-command demo (in-process mail server, both
# proxies, admin endpoint, demo users). Extra arguments go to `smimeproxy demo`,
# e.g. `./scripts/run.sh bin/smimeproxy -dir /tmp/demo`.
set -euo pipefail
bin=${1:-bin/smimeproxy}
shift || true
exec "$bin" demo "$@"
