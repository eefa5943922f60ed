#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its WebDriver (`chromium`, `chromium-driver`) with
# apt-get when either is missing, for the preview page's browser test (tests/preview.rs, which
# drives /usr/bin/chromium through /usr/bin/chromedriver on loopback). Needs root or sudo, and
# apt. Does nothing when both are there. Works from any directory.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi

sudo=""
if [[ "$(id -u)" -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-chromium: not root and no sudo; install chromium and chromium-driver first" >&2
    exit 1
  fi
  sudo="sudo"
fi

start=$SECONDS
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver
for bin in /usr/bin/chromium /usr/bin/chromedriver; do
  if [[ ! -x "$bin" ]]; then
    echo "install-chromium: $bin is still missing after apt-get" >&2
    exit 1
  fi
done
echo "chromium installed in $((SECONDS - start)) s: $(/usr/bin/chromium --version 2>/dev/null || true)"
