#!/usr/bin/env bash
# Runs every test of the workspace: unit, golden-vector, property, UI (trybuild), store
# conformance against a real S3 server, and doc tests; each benchmark once in test mode; and
# the quickstart example. Installs (if missing) and starts Redis and SeaweedFS on loopback first.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/services.sh)"

cargo test --workspace
cargo test --workspace --benches
cargo run --quiet --example quickstart >/dev/null
echo "quickstart example: ok"
