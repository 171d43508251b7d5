#!/usr/bin/env bash
# Brings tests/tls-provider/Cargo.lock in line after a dependency of the published crates
# changed. That crate is its own workspace (see docs/releasing.md), so its lockfile is not
# updated with the main one; CI builds it with --locked and stops when it is stale.
#
# The main Cargo.lock is the starting point, so both resolve the shared crates to the same
# versions; cargo then drops what the test crate does not use and adds what only it uses.
#
# Usage: scripts/sync-tls-provider-lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cp Cargo.lock tests/tls-provider/Cargo.lock
cargo metadata --manifest-path tests/tls-provider/Cargo.toml --format-version 1 >/dev/null
git diff --stat -- tests/tls-provider/Cargo.lock
