#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (pinned below), installs it with `dpkg -i`, checks what
# it installed (the binary, the config conffile at mode 0640, the unit offline with
# `systemd-analyze verify` and `systemd-analyze security`, whose exposure must be at most 2.0),
# removes it with `dpkg -r` and checks the config stays, then purges it. Runs as root (CI does);
# installs cargo-deb, systemd (for systemd-analyze) and dpkg-dev (for the package's dependencies)
# when missing. With TLS on: installs the packaged drop-in (tls.conf: the certificate and key as
# credentials), verifies and scores the unit with it, and runs the installed binary's `serve` over
# HTTPS as an unprivileged user reading the credential copies, as the DynamicUser would (openssl
# makes a throw-away certificate). Leaves the machine without the package, whatever happens.
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
command -v openssl >/dev/null || apt_install openssl
if [[ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $deb_version" ]]; then
  start=$SECONDS
  cargo install --locked --quiet "cargo-deb@$deb_version"
  echo "installed cargo-deb $deb_version in $((SECONDS - start)) s"
fi

dropin_dir="/etc/systemd/system/$pkg.service.d"
purge() {
  rm -rf "$dropin_dir" /etc/gitlab-chat-bridge/fullchain.pem /etc/gitlab-chat-bridge/privkey.pem
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

echo "== TLS: the packaged drop-in hands the certificate and key over as credentials"
dropin=/usr/share/doc/$pkg/tls.conf
[[ -f "$dropin" ]] || fail "the package has no $dropin"
install -d -m 0755 "$dropin_dir"
install -m 0644 "$dropin" "$dropin_dir/tls.conf"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout /etc/gitlab-chat-bridge/privkey.pem -out /etc/gitlab-chat-bridge/fullchain.pem 2>/dev/null
chmod 0600 /etc/gitlab-chat-bridge/privkey.pem /etc/gitlab-chat-bridge/fullchain.pem
systemd-analyze verify "$unit"
loaded=$(systemd-analyze cat-config "systemd/system/$pkg.service.d/tls.conf" | grep -c '^LoadCredential=tls-')
[[ "$loaded" -eq 2 ]] || fail "the drop-in's two LoadCredential lines were not read"
report=$(systemd-analyze security --offline=true "$unit")
exposure=$(sed -n 's/^→ Overall exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$report")
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' ||
  fail "exposure with the TLS drop-in $exposure is above $max_exposure"
echo "verify with tls.conf: no problem; exposure $exposure"
# What systemd does at start: copy each LoadCredential= source into a folder readable by the
# service's (dynamic) user only. Here: nobody, and a loopback port; the drop-in's two files as
# systemd would copy them, the config and secrets written below.
creds=$(mktemp -d)
state=$(mktemp -d)
while IFS=: read -r name src; do
  install -m 0400 -o nobody "$src" "$creds/$name"
done < <(sed -n 's/^LoadCredential=//p' "$dropin_dir/tls.conf")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s#/run/credentials/gitlab-chat-bridge.service/#$creds/#" \
    -e "s#^listen = .*#listen = \"127.0.0.1:$port\"\ntls_cert_file = \"$creds/tls-cert\"\ntls_key_file = \"$creds/tls-key\"#" \
    -e "s#^path = .*#path = \"$state/outbox.sqlite\"#" "$config" >"$creds/config.toml"
printf '%s' 'a-webhook-secret' >"$creds/secret-token"
printf '%s' 'a-zapikey' >"$creds/cliq-zapikey"
chown nobody "$creds" "$creds/config.toml" "$creds/secret-token" "$creds/cliq-zapikey" "$state"
chmod 0700 "$creds" "$state"
nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all)
as_nobody() { "${nobody[@]}" "$@"; }
# The key where the README once pointed the config (root-only in /etc): unreadable to the service.
if as_nobody cat /etc/gitlab-chat-bridge/privkey.pem >/dev/null 2>&1; then
  fail "the service's user can read /etc/gitlab-chat-bridge/privkey.pem: the test proves nothing"
fi
as_nobody /usr/bin/gitlab-chat-bridge check --config "$creds/config.toml" >/dev/null ||
  fail "check with TLS from the credentials failed"
# Not through the `as_nobody` function: a function run in the background is a subshell, `$!`
# would be that subshell, and killing it would leave the daemon running. setpriv execs the binary,
# so `$!` is the daemon itself.
"${nobody[@]}" /usr/bin/gitlab-chat-bridge serve --config "$creds/config.toml" 2>"$state/serve.log" &
serve_pid=$!
healthz=$(python3 - "$port" /etc/gitlab-chat-bridge/fullchain.pem <<'PY'
import ssl, sys, time, urllib.request
port, ca = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
for _ in range(100):  # at most ~10 s
    try:
        with urllib.request.urlopen(f"https://localhost:{port}/healthz", context=ctx, timeout=2) as r:
            print(r.status, r.read().decode().strip())
            break
    except OSError:
        time.sleep(0.1)
PY
)
kill "$serve_pid" 2>/dev/null || true
wait "$serve_pid" 2>/dev/null || true
if pgrep -f "gitlab-chat-bridge serve --config $creds/config.toml" >/dev/null; then
  fail "serve was still running after SIGTERM"
fi
[[ "$healthz" == "200 ok" ]] || { cat "$state/serve.log" >&2; fail "serve over TLS from the credentials: '$healthz'"; }
echo "serve as nobody with TLS from the credentials: GET https://localhost:$port/healthz -> $healthz"
rm -rf "$creds" "$state" "$dropin_dir" /etc/gitlab-chat-bridge/fullchain.pem /etc/gitlab-chat-bridge/privkey.pem

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
