#!/usr/bin/env bash
# Checks, with the Python peer itself, that Python atdata 0.7 reads what Rust writes: the
# `atdata` command inserts the golden image shards into a SQLite index and into Redis (database
# 62, emptied first) with Python-form schema refs; Python's `Index` then lists both, finds the
# entry by name, reads its schema record and reads every stored sample.
# (Rust reading Python's files is covered by the test suite's golden dumps.)
#
#   bash scripts/python-interop.sh          # needs Python 3.12 (pyenv's here) and PyPI
#
# Not part of CI: installing atdata and its dependencies takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/services.sh)"
PYTHON="${PYTHON:-$(command -v python3.12 || echo "$HOME/.pyenv/versions/3.12.1/bin/python")}"
VENV="${PYATDATA_VENV:-$(dirname "$(mktemp -u)")/test-services/pyatdata-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import atdata' 2>/dev/null; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "atdata==0.7.0b1" redis
fi

cargo build --quiet -p atdata-cli
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Database 62 of the test Redis: emptied only when it is empty or carries the test marker.
case "$ATDATA_TEST_REDIS_URL" in
  redis://127.*|redis://localhost*|redis://\[::1\]*) ;;
  *) echo "ATDATA_TEST_REDIS_URL must be on loopback" >&2; exit 1 ;;
esac
redis_url="${ATDATA_TEST_REDIS_URL%/}/62"
if [ "$(redis-cli -u "$redis_url" dbsize)" != 0 ] &&
   [ "$(redis-cli -u "$redis_url" exists atdata-test:owned)" != 1 ]; then
  echo "database 62 of $ATDATA_TEST_REDIS_URL holds data this script did not write: not flushing it" >&2
  exit 1
fi
redis-cli -u "$redis_url" flushdb >/dev/null
redis-cli -u "$redis_url" set atdata-test:owned 1 >/dev/null
for index in "sqlite:$work/index.db" "$redis_url"; do
  env -u AWS_BUCKET -u ATDATA_INDEX target/debug/atdata --index "$index" --store-dir "$work/store" \
    --python-schema-refs insert 'tests/golden/shards/golden_image-{000000..000001}.tar' \
    --name rust-images --maxcount 2 >/dev/null
done

"$VENV/bin/python" - "$work/index.db" "$redis_url" <<'PY'
import sys
import atdata
import redis
from atdata import Index

def check(index, label):
    entries = list(index.list_entries())
    assert [e.name for e in entries] == ["rust-images"], entries
    e = index.get_entry_by_name("rust-images")
    assert e.schema_ref == "atdata://local/schema/RustImages@1.0.0", e.schema_ref
    assert set(e.metadata["checksums"]) == set(e.data_urls), e.metadata
    schema = index.get_schema(e.schema_ref)
    assert [f["name"] for f in schema["fields"]][:3] == ["image", "label", "index"], schema
    labels = [s["label"] for url in e.data_urls
              for s in atdata.Dataset[atdata.DictSample](url).ordered(batch_size=None)]
    assert labels == [f"img_{i}" for i in range(5)], labels
    print(f"python atdata reads the Rust-written {label} index: {e.cid}, {len(labels)} samples")

check(Index(provider="sqlite", path=sys.argv[1], atmosphere=None), "SQLite")
check(Index(redis=redis.Redis.from_url(sys.argv[2]), atmosphere=None), "Redis")
PY
