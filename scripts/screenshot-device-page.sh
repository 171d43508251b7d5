#!/usr/bin/env bash
# Takes a screenshot of the mock provider's device verification page with headless Chromium.
#
# It starts `device-cli` (which embeds the mock), and trusts the mock's CA the way a person
# would: added to a throwaway NSS database that Chromium reads. No certificate check is disabled.
#
# Needs: chromium, libnss3-tools (certutil).   Usage: scripts/screenshot-device-page.sh [out.png]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/screenshot.sh
start "${1:-target/screenshots/device-verification.png}"

cargo build -q -p device-cli
./target/debug/device-cli --no-qr > "$work/cli.out" 2>/dev/null &
bg_pid=$!
wait_for "$work/cli.out" "Waiting for approval" || true
uri=$(awk '/1\. On your phone/ {print $NF; exit}' "$work/cli.out")
code=$(awk '/2\. Enter the code/ {print $NF; exit}' "$work/cli.out")
ca=$(grep -o '/[^ ]*doximity-mock-ca-[^ :]*\.pem' "$work/cli.out" | head -1)
[ -n "$uri" ] && [ -n "$code" ] && [ -n "$ca" ] || { echo "device-cli did not start" >&2; exit 1; }

trust_ca "$work" "$ca"

screenshot "$work" 800,760 "$out" "$uri?user_code=$code"
