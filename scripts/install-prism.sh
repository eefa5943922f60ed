#!/usr/bin/env bash
# Installs the pinned Prism mock server (@stoplight/prism-cli 5.14.2) into .tools/prism/node_modules
# from the committed package-lock.json, for the schema tests (tests/cliq_schema.rs and the Prism
# part of tests/setup.rs, on the documents vendored in specs/). Needs node >= 18.20 and npm;
# fetches from the npm registry only. Does nothing when the pinned version is already there.
# Works from any directory. After it: .tools/prism/node_modules/.bin/prism --version  ->  5.14.2
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want="5.14.2"
dir=".tools/prism"
prism="$dir/node_modules/.bin/prism"

if [[ -x "$prism" ]]; then
  have="$("$prism" --version 2>/dev/null || true)"
  if [[ "$have" == "$want" ]]; then
    echo "prism $want already installed: $prism"
    exit 0
  fi
  echo "prism at $prism reports '${have:-nothing}', want $want: reinstalling"
fi

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install-prism: '$tool' not found; install Node.js >= 18.20 (with npm) first" >&2
    exit 1
  fi
done

# --ignore-scripts skips @scarf/scarf's install-analytics postinstall, the only install script.
start=$SECONDS
npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund
have="$("$prism" --version)"
if [[ "$have" != "$want" ]]; then
  echo "install-prism: installed prism reports '$have', want $want" >&2
  exit 1
fi
echo "prism $have installed in $((SECONDS - start)) s: $prism"
