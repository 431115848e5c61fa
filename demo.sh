#!/usr/bin/env bash
# The local demo: installs redis-server when it is missing (Debian/Ubuntu), builds smsq and
# runs `smsq dev`, which starts Redis (or uses the one at redis.url), the fake provider, the
# API and a worker, then sends and verifies one code. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server is missing: installing it with apt-get"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y redis-server
fi

exec cargo run --locked --quiet -- dev "$@"
