#!/usr/bin/env bash
# Checks with the Python peer itself (atdata 0.7.0b1 from PyPI in a Python 3.12 venv, reused
# when its folder survives) that both libraries read what the other writes:
#
# Rust -> Python, all on default settings: the `atdata` command inserts the golden image shards
#   (payloads with NDArray fields) shard for shard into a SQLite index and into Redis (database
#   62 of the test Redis) with a schema it infers from every sample and publishes; the
#   quickstart example writes its embedded index (a typed dataset, its record published by the
#   library); the `shard_writer` example writes gzip shards with ShardWriter. Python's `Index`
#   lists the indexes, finds the entries by name (through the labels Rust wrote), reads the
#   schema records (Python's `get_schema` accepts the references Rust wrote) and the metadata
#   (`checksums`, `sample_counts`, `shard_sizes`, checked against the files), and reads every
#   sample of every shard, plain and gzip, comparing values.
# Python -> Rust: Python writes samples (NDArray, int, float, str, optional, list fields) with
#   `write_samples`, publishes the schema and inserts the dataset into its own SQLite index and
#   into Redis; the `atdata` command lists them, reads the records and decodes every sample by
#   the published schema, comparing them with what Python wrote.
#
#   bash scripts/python-interop.sh        # run by scripts/test.sh; needs PyPI the first time
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(bash scripts/services.sh)"
# The Python 3.12 venv with atdata 0.7.0b1: $VENV.
source scripts/python-venv.sh

cargo build --quiet -p atdata-cli -p atdata-examples --bins --examples
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

atdata() { env -u AWS_BUCKET -u ATDATA_INDEX HOME="$work" target/debug/atdata "$@"; }

# ---------------------------------------------------------------- Rust writes
for index in "sqlite:$work/rust.db" "$redis_url"; do
  atdata --index "$index" --store-dir "$work/store" \
    insert 'tests/golden/shards/golden_image-{000000..000001}.tar' --name rust-images >/dev/null
done
# The seed's reference form, still written on request: Python refuses it (why it is not the default).
atdata --index "sqlite:$work/seed.db" --store-dir "$work/store" --seed-schema-refs \
  insert 'tests/golden/shards/golden_image-{000000..000001}.tar' --name seed-images >/dev/null
target/debug/examples/quickstart "$work/quickstart" >/dev/null
target/debug/examples/shard_writer "$work/gz" >/dev/null

"$VENV/bin/python" - "$work/rust.db" "$redis_url" "$work/gz" "$work/quickstart/index.db" "$work/seed.db" <<'PY'
import glob, hashlib, os, sys
import atdata, redis, webdataset as wds, msgpack
from atdata import Index

def check_metadata(e, samples_per_url):
    """The per-shard keys Rust records, read by Python as plain metadata."""
    m = e.metadata
    assert set(m["checksums"]) == set(e.data_urls), m
    assert m["sample_counts"] == samples_per_url, (m["sample_counts"], samples_per_url)
    for url in e.data_urls:
        data = open(url, "rb").read()
        assert m["shard_sizes"][url] == len(data), (url, m["shard_sizes"])
        assert m["checksums"][url] == hashlib.sha256(data).hexdigest(), url

def read(url):
    return list(atdata.Dataset[atdata.DictSample](url).ordered(batch_size=None))

def check(index, label):
    entries = list(index.list_entries())
    assert [e.name for e in entries] == ["rust-images"], entries
    e = index.get_entry_by_name("rust-images")
    assert e.schema_ref == "atdata://local/schema/RustImages@1.0.0", e.schema_ref
    assert len(e.data_urls) == 2, e.data_urls  # shard for shard: the golden set's two shards
    schema = index.get_schema(e.schema_ref)
    assert [f["name"] for f in schema["fields"]][:3] == ["image", "label", "index"], schema
    per_url = {url: read(url) for url in e.data_urls}
    check_metadata(e, {url: len(s) for url, s in per_url.items()})
    labels = [s["label"] for url in e.data_urls for s in per_url[url]]
    assert labels == [f"img_{i}" for i in range(5)], labels
    # The shards' sidecars (`<stem>.idx`) sit beside them; webdataset reads the shards unchanged.
    for url in e.data_urls:
        assert os.path.exists(url[: url.index(".", url.rindex("/"))] + ".idx"), url
    assert len(list(wds.WebDataset(e.data_urls, shardshuffle=False))) == 5
    print(f"python reads the Rust-written {label} index: {e.cid}, {len(labels)} samples, sidecars beside the shards")

check(Index(provider="sqlite", path=sys.argv[1], atmosphere=None), "SQLite")
check(Index(redis=redis.Redis.from_url(sys.argv[2]), atmosphere=None), "Redis")

# The quickstart's embedded index, written with the library's defaults.
index = Index(provider="sqlite", path=sys.argv[4], atmosphere=None)
e = index.get_entry_by_name("training-v1")
assert e.schema_ref == "atdata://local/schema/TrainingSample@1.0.0", e.schema_ref
schema = index.get_schema(e.schema_ref)
assert [f["name"] for f in schema["fields"]] == ["features", "label", "source", "note"], schema
assert [s["name"] for s in index.list_schemas()] == ["TrainingSample"]
per_url = {url: read(url) for url in e.data_urls}
check_metadata(e, {url: len(s) for url, s in per_url.items()})
labels = [s["label"] for url in e.data_urls for s in per_url[url]]
assert labels == [i % 10 for i in range(100)], labels
print(f"python reads the quickstart's index: {e.cid}, {len(e.data_urls)} shards, {len(labels)} samples")

seed = Index(provider="sqlite", path=sys.argv[5], atmosphere=None).get_entry_by_name("seed-images")
assert seed.schema_ref.startswith("atdata://local/sampleSchema/"), seed.schema_ref
try:
    Index(provider="sqlite", path=sys.argv[5], atmosphere=None).get_schema(seed.schema_ref)
    raise AssertionError("Python read a seed-form reference")
except ValueError as e:
    print(f"python refuses the seed's form, as expected: {e}")

shards = sorted(glob.glob(f"{sys.argv[3]}/captions-*.tar.gz"))
assert len(shards) > 1, shards
seen = []
for shard in shards:
    for sample in wds.WebDataset(shard, shardshuffle=False):
        body = msgpack.unpackb(sample["msgpack"], raw=False)
        i = int(sample["__key__"])
        assert body == {"text": f"caption number {i}", "tokens": list(range(i % 7))}, body
        seen.append(i)
assert seen == list(range(1000)), seen[:10]
print(f"python webdataset reads the Rust-written gzip shards: {len(shards)} shards, {len(seen)} samples")
PY

# ---------------------------------------------------------------- Python writes
"$VENV/bin/python" - "$work/py" "$work/python.db" "$redis_url" <<'PY'
import json, os, sys
from typing import Optional
import numpy as np
import atdata, redis
from atdata import Index
from numpy.typing import NDArray

@atdata.packable
class PyRow:
    """A row Python wrote."""
    features: NDArray
    label: int
    score: float
    name: str
    note: Optional[str]
    tags: list[str]

rows = [PyRow(features=np.arange(i, i + 4, dtype=np.float32).reshape(2, 2), label=i,
              score=i / 4, name=f"row {i}", note=None if i % 2 else f"note {i}",
              tags=[f"t{j}" for j in range(i % 3)]) for i in range(10)]
os.makedirs(sys.argv[1], exist_ok=True)
ds = atdata.write_samples(rows, f"{sys.argv[1]}/rows.tar", maxcount=4)
expected = [{"features": r.features.tolist(), "label": r.label, "score": r.score, "name": r.name,
             "note": r.note, "tags": r.tags} for r in rows]
json.dump(expected, open(f"{sys.argv[1]}/expected.json", "w"))
for index in (Index(provider="sqlite", path=sys.argv[2], atmosphere=None),
              Index(redis=redis.Redis.from_url(sys.argv[3]), atmosphere=None)):
    ref = index.publish_schema(PyRow, version="1.0.0")
    entry = index.insert_dataset(ds, name="py-rows", schema_ref=ref)
print(f"python wrote {len(rows)} rows in {ds.url}: {entry.cid}")
PY

# Rust reads it back (its output compared in Python: no jq needed on the machine).
for index in "sqlite:$work/python.db" "$redis_url"; do
  atdata --index "$index" get py-rows --json >"$work/entry.json"
  ref="$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["schema_ref"])' "$work/entry.json")"
  cid="$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["cid"])' "$work/entry.json")"
  url="$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["data_urls"][0])' "$work/entry.json")"
  atdata --index "$index" schema show "$ref" --json >"$work/schema.json"
  atdata --index "$index" schema show PyRow --json >"$work/schema-short.json"
  cmp -s "$work/schema.json" "$work/schema-short.json" || { echo "schema show PyRow differs from $ref" >&2; exit 1; }
  atdata --index "$index" get "$cid" --json >"$work/by-cid.json"
  atdata --index "$index" cat "$url" --schema "$ref" >"$work/read.jsonl"
  "$VENV/bin/python" - "$work" "$index" <<'PY'
import json, sys
work, index = sys.argv[1], sys.argv[2]
entry = json.load(open(f"{work}/entry.json"))
assert entry["schema_ref"] == "atdata://local/schema/PyRow@1.0.0", entry
# The CID names the same entry when Rust looks it up.
assert json.load(open(f"{work}/by-cid.json"))["name"] == "py-rows"
schema = json.load(open(f"{work}/schema.json"))
assert [f["name"] for f in schema["fields"]] == ["features", "label", "score", "name", "note", "tags"], schema
want = json.load(open(f"{work}/py/expected.json"))
got = [json.loads(line) for line in open(f"{work}/read.jsonl")]
def flat(x):
    return [v for row in x for v in row] if x and isinstance(x[0], list) else x
for g in got:
    assert g.pop("__key__"), g  # cat shows each sample's key (Python made them: uuids)
    assert g["features"]["dtype"] == "float32" and g["features"]["shape"] == [2, 2], g
    g["features"] = g["features"]["data"]
for w in want:
    w["features"] = flat(w["features"])
assert got == want, (got, want)
print(f"rust reads the Python-written {index.split(':')[0]} index: {entry['cid']}, {len(got)} samples")
PY
done
echo "python interop: ok"
