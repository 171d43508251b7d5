#!/usr/bin/env bash
# Takes a screenshot of the mock provider's sign-in page with headless Chromium.
#
# The mock's CA is trusted the way a person would trust it: added to a throwaway NSS database
# that Chromium reads. No certificate check is disabled.
#
# Needs: chromium, libnss3-tools (certutil).   Usage: scripts/screenshot-mock-signin.sh [out.png]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/screenshot.sh
start "${1:-target/screenshots/mock-signin.png}"

cargo build -q -p doximity-mock
MOCK_ADDR=127.0.0.1:0 ./target/debug/doximity-mock > "$work/mock.out" 2>/dev/null &
bg_pid=$!
wait_for "$work/mock.out" "Press Ctrl-C" || true
issuer=$(awk '/issuer:/ {print $2; exit}' "$work/mock.out")
ca=$(awk '/CA certificate:/ {print $3; exit}' "$work/mock.out")
[ -n "$issuer" ] && [ -n "$ca" ] || { echo "mock provider did not start" >&2; exit 1; }

trust_ca "$work" "$ca"

# A well-formed authorization request (S256 challenge of a fixed demo verifier).
url="$issuer/oauth/authorize?client_id=doximity-demo-client&response_type=code"
url+="&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fauth%2Fdoximity%2Fcallback"
url+="&scope=openid%20profile%3Aread%3Abasic&state=demo-state&nonce=demo-nonce"
url+="&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"

screenshot "$work" 800,700 "$out" "$url"
