#!/usr/bin/env bash
# Takes a screenshot of the mock provider's device verification page with headless Chromium.
#
# It starts `device-cli` (which embeds the mock), and trusts the mock's CA the way a person
# would: added to a throwaway NSS database that Chromium reads. No certificate check is disabled.
#
# Needs: chromium, libnss3-tools (certutil).   Usage: scripts/screenshot-device-page.sh [out.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/screenshots/device-verification.png}"
mkdir -p "$(dirname "$out")"
work="$(mktemp -d)"
cleanup() { [ -n "${cli_pid:-}" ] && kill "$cli_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cargo build -q -p device-cli
./target/debug/device-cli --no-qr > "$work/cli.out" 2>/dev/null &
cli_pid=$!
for _ in $(seq 1 100); do grep -q "Waiting for approval" "$work/cli.out" 2>/dev/null && break; sleep 0.1; done
uri=$(awk '/1\. On your phone/ {print $NF; exit}' "$work/cli.out")
code=$(awk '/2\. Enter the code/ {print $NF; exit}' "$work/cli.out")
ca=$(grep -o '/[^ ]*doximity-mock-ca-[^ :]*\.pem' "$work/cli.out" | head -1)
[ -n "$uri" ] && [ -n "$code" ] && [ -n "$ca" ] || { echo "device-cli did not start" >&2; exit 1; }

export HOME="$work/home"
mkdir -p "$HOME/.pki/nssdb"
certutil -d "sql:$HOME/.pki/nssdb" -N --empty-password
certutil -d "sql:$HOME/.pki/nssdb" -A -t "C,," -n doximity-mock -i "$ca"

chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --window-size=800,760 --hide-scrollbars \
  --screenshot="$PWD/$out" "$uri?user_code=$code" 2>/dev/null
echo "$out"
