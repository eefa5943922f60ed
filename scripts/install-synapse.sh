#!/usr/bin/env bash
# Installs the pinned Matrix homeserver Synapse (`matrix-synapse` from PyPI) into a virtual
# environment under .tools/synapse (gitignored), for the Matrix tests: tests/support/synapse.rs
# starts a throw-away homeserver on a loopback port from it. Uses python3's venv module
# (apt-get install python3-venv when it is missing). Does nothing when the pinned version is
# there. Works from any directory.
set -euo pipefail
cd "$(dirname "$0")/.."
version="1.163.2"
venv=".tools/synapse"
py="$venv/bin/python"

if [[ -x "$py" ]] && [[ "$("$py" -c 'import synapse; print(synapse.__version__)' 2>/dev/null)" == "$version" ]]; then
  echo "matrix-synapse $version already installed in $venv"
  exit 0
fi

start=$SECONDS
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  sudo=""
  if [[ "$(id -u)" -ne 0 ]]; then
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends python3-venv
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$py" -m pip install --quiet --disable-pip-version-check "matrix-synapse==$version"
if ! "$py" -c 'import synapse.app.homeserver' >/dev/null 2>&1; then
  echo "install-synapse: synapse.app.homeserver still missing in $venv after pip install" >&2
  exit 1
fi
echo "matrix-synapse $version installed in $venv in $((SECONDS - start)) s"
