# Shared by the screenshot scripts (sourced, not run): a throwaway NSS database that trusts the
# mock provider's CA the way a person would, and one headless Chromium screenshot. No
# certificate check is disabled.

# start OUT: makes OUT's folder and a work folder `$work`, removed at exit together with the
# background process `$bg_pid` (when the script has started one).
start() {
  out="$1"
  mkdir -p "$(dirname "$out")"
  work="$(mktemp -d)"
  trap 'if [ -n "${bg_pid:-}" ]; then kill "$bg_pid" 2>/dev/null; fi; rm -rf "$work"' EXIT
}

# wait_for FILE TEXT: waits (up to 10 s) until TEXT appears in FILE.
wait_for() {
  for _ in $(seq 1 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

# trust_ca WORK CA: points HOME into WORK, with an NSS database that trusts the PEM file CA.
trust_ca() {
  export HOME="$1/home"
  mkdir -p "$HOME/.pki/nssdb"
  certutil -d "sql:$HOME/.pki/nssdb" -N --empty-password
  certutil -d "sql:$HOME/.pki/nssdb" -A -t "C,," -n doximity-mock -i "$2"
}

# screenshot WORK SIZE OUT URL: a headless Chromium of window SIZE (`W,H`) saves URL to OUT.
screenshot() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$1/profile" --window-size="$2" --hide-scrollbars \
    --screenshot="$PWD/$3" "$4" 2>/dev/null
  echo "$3"
}
