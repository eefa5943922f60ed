#!/usr/bin/env bash
# Installs Debian's PostgreSQL server (`postgresql`) with apt-get when its binaries are missing,
# for the tests of the PostgreSQL store (tests/support/postgres.rs runs `initdb` and `pg_ctl`
# from /usr/lib/postgresql/*/bin to make a throw-away cluster on a loopback port; no system
# cluster is used). Needs root or sudo, and apt. Does nothing when they are there. Works from
# any directory.
set -euo pipefail

found() {
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    if [[ -x "$bin/initdb" && -x "$bin/pg_ctl" && -x "$bin/psql" ]]; then
      echo "$bin"
      return 0
    fi
  done
  return 1
}

if bin=$(found); then
  echo "postgresql already installed: $("$bin/postgres" --version 2>/dev/null || echo "$bin")"
  exit 0
fi

sudo=""
if [[ "$(id -u)" -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-postgres: not root and no sudo; install postgresql first" >&2
    exit 1
  fi
  sudo="sudo"
fi

start=$SECONDS
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends postgresql
if ! bin=$(found); then
  echo "install-postgres: initdb, pg_ctl or psql still missing under /usr/lib/postgresql after apt-get" >&2
  exit 1
fi
echo "postgresql installed in $((SECONDS - start)) s: $("$bin/postgres" --version 2>/dev/null || true)"
