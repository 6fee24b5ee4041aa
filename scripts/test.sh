#!/usr/bin/env bash
# Runs every test of the workspace: unit, golden-vector, property, UI (trybuild), store
# conformance against a real S3 server, the index on a real Redis and SQLite, the `atdata`
# command and the examples end to end, and doc tests; each benchmark once in test mode; and the
# quickstart and workflow examples. Installs (if missing) and starts Redis and SeaweedFS on
# loopback first.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/services.sh)"

# The end-to-end tests run the `atdata` binary and the quickstart example as processes.
cargo build --workspace --bins --examples --quiet
cargo test --workspace
cargo test --workspace --benches
cargo run --quiet --example quickstart >/dev/null
echo "quickstart example: ok"
cargo run --quiet --example workflow >/dev/null
echo "workflow example: ok"
