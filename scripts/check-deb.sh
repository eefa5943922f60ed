#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (pinned below), installs it with `dpkg -i`, checks what
# it installed (the binary, the config conffile at mode 0640, the unit offline with
# `systemd-analyze verify` and `systemd-analyze security`, whose exposure must be at most 2.0),
# removes it with `dpkg -r` and checks the config stays, then purges it. Runs as root (CI does);
# installs cargo-deb, systemd (for systemd-analyze) and dpkg-dev (for the package's dependencies)
# when missing. Leaves the machine without the package, whatever happens.
#
# Usage: bash scripts/check-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."

deb_version="3.8.0"
max_exposure="2.0"
pkg="gitlab-chat-bridge"
config="/etc/gitlab-chat-bridge/config.toml"

if [[ "$(id -u)" -ne 0 ]]; then
  echo "check-deb: run as root (it installs and removes the package)" >&2
  exit 1
fi

apt_updated=""
apt_install() {
  if [[ -z "$apt_updated" ]]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
command -v systemd-analyze >/dev/null || apt_install systemd
command -v dpkg-shlibdeps >/dev/null || apt_install dpkg-dev
if [[ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $deb_version" ]]; then
  start=$SECONDS
  cargo install --locked --quiet "cargo-deb@$deb_version"
  echo "installed cargo-deb $deb_version in $((SECONDS - start)) s"
fi

purge() {
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -qv '^unknown\|not-installed'; then
    dpkg --purge "$pkg" >/dev/null
  fi
}
fail() {
  echo "check-deb: FAILED: $*" >&2
  exit 1
}
# A package left by an interrupted run would hide an install problem; none is left behind.
purge
trap purge EXIT

echo "== cargo deb (release build)"
start=$SECONDS
deb=$(cargo deb --locked --quiet | tail -n 1)
[[ -f "$deb" ]] || fail "cargo deb printed no package file: $deb"
echo "built $deb ($(du -k "$deb" | cut -f1) KiB) in $((SECONDS - start)) s"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Recommends\|Installed-Size\): /  \1: /p'

echo "== dpkg -i"
dpkg -i "$deb"
[[ -x /usr/bin/gitlab-chat-bridge ]] || fail "no /usr/bin/gitlab-chat-bridge"
unit=$(dpkg -L "$pkg" | grep '/systemd/system/gitlab-chat-bridge\.service$') ||
  fail "the package has no unit"
echo "unit: $unit"
dpkg-query -W -f='${Conffiles}\n' "$pkg" | grep -q "^ $config " || fail "$config is not a conffile"
mode=$(stat -c '%a %U:%G' "$config")
[[ "$mode" == "640 root:root" ]] || fail "$config is $mode, not 640 root:root"
echo "config: $config, conffile, $mode"

# The packaged config loads and its templates compile, given the secrets the unit hands it as
# credentials (a copy with the credentials folder pointed elsewhere).
creds=$(mktemp -d)
printf '%s' 'a-webhook-secret' >"$creds/secret-token"
printf '%s' 'a-zapikey' >"$creds/cliq-zapikey"
sed "s#/run/credentials/gitlab-chat-bridge.service/#$creds/#" "$config" >"$creds/config.toml"
/usr/bin/gitlab-chat-bridge check --config "$creds/config.toml"
rm -rf "$creds"

echo "== systemd-analyze verify"
systemd-analyze verify "$unit"
echo "verify: no problem"

echo "== systemd-analyze security --offline=true"
report=$(systemd-analyze security --offline=true "$unit")
exposure=$(sed -n 's/^→ Overall exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$report")
[[ -n "$exposure" ]] || fail "no exposure level in: $report"
echo "$report" | tail -n 1
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' ||
  fail "exposure $exposure is above $max_exposure"
echo "exposure: $exposure (at most $max_exposure)"

echo "== dpkg -r keeps the config"
dpkg -r "$pkg"
[[ ! -e /usr/bin/gitlab-chat-bridge ]] || fail "dpkg -r left the binary"
[[ -f "$config" ]] || fail "dpkg -r removed $config"
echo "after dpkg -r: $(stat -c '%n %a %U:%G' "$config") is still there"

echo "== dpkg --purge"
dpkg --purge "$pkg"
[[ ! -e "$config" ]] || fail "dpkg --purge left $config"
echo "after dpkg --purge: $config is gone"
echo "check-deb: ok"
