#!/usr/bin/env bash
# Runs every test of the workspace: unit, golden-vector, property, UI (trybuild) and doc tests,
# each benchmark once in test mode, and the quickstart example.
# No test needs a service yet; when they do, this script starts them first.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace
cargo test --workspace --benches
cargo run --quiet --example quickstart >/dev/null
echo "quickstart example: ok"
