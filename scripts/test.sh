#!/usr/bin/env bash
# Runs every test of the workspace: unit, golden-vector, property, UI (trybuild), store
# conformance against a real S3 server, the index on a real Redis and SQLite, the `atdata`
# command and the examples end to end, and doc tests; each benchmark once in test mode; and the
# quickstart, elastic_loader and workflow examples. Installs (if missing) and starts Redis and
# SeaweedFS on loopback first; last, the Python interop check (scripts/python-interop.sh: Python atdata 0.7 and
# this library read what the other writes).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/services.sh)"

# The end-to-end tests run the `atdata` binary and the quickstart example as processes.
cargo build --workspace --bins --examples --quiet
cargo test --workspace
cargo test --workspace --benches
cargo run --quiet --example quickstart >/dev/null
echo "quickstart example: ok"
cargo run --quiet --example elastic_loader >/dev/null
echo "elastic_loader example: ok"
# The workflow example reads a user's variables, as users expect: point them at the test services.
REDIS_URL="$ATDATA_TEST_REDIS_URL/19" AWS_ENDPOINT="$ATDATA_TEST_S3_ENDPOINT" \
  AWS_ACCESS_KEY_ID="$ATDATA_TEST_S3_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$ATDATA_TEST_S3_SECRET_ACCESS_KEY" \
  AWS_REGION="$ATDATA_TEST_S3_REGION" AWS_BUCKET="$ATDATA_TEST_S3_BUCKET" \
  cargo run --quiet --example workflow >/dev/null
echo "workflow example: ok"
bash scripts/python-interop.sh
