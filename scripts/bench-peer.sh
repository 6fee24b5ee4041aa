#!/usr/bin/env bash
# The read path side by side with the Python peer, on the same Python-written files, in one run:
#
#   tabular: 100,000 samples {features: f32[128], label: int, source: str} in 10 shards
#   image:   1,000 samples {image: f32[224,224,3], label: str} in 10 shards
#
# written by Python atdata 0.7.0b1 (`write_samples`, maxcount 10,000 and 100), then read with
# `ordered(batch_size=32)` by Python atdata (every field of every batch aggregated, as our batches
# are), by ours (`ordered(32)`, the `peer` benchmark, release build), and by `cat > /dev/null`;
# and, for the target on our own shards, 100,000 tabular samples written by our `ShardWriter`
# (maxcount 10,000) and read by ours. Each read runs once to warm the page cache, then three
# times; the best run counts. Prints samples/s, MB/s, samples per CPU-second and the ratios;
# then, for the images, the ceiling of a reader that copies each byte once into the batches it
# hands out (`peer copy`: the files read in 19 MB chunks, each into new memory), beside `cat`.
#
#   bash scripts/bench-peer.sh [WORK_DIR]    # not in CI: the venv and the data take minutes
#
# WORK_DIR (default: a temporary folder, removed after) keeps the data for another run.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Python 3.12 venv with atdata 0.7.0b1: $VENV.
source scripts/python-venv.sh

if [ -n "${1:-}" ]; then
  work="$1"
  mkdir -p "$work"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
echo "[peer] building the reader (release)" >&2
cargo bench -q -p atdata-ml --bench peer --no-run 2>/dev/null ||
  cargo bench -p atdata-ml --bench peer --no-run
# The benchmark binary cargo just built (the newest of its name).
ours="$(ls -t target/release/deps/peer-* | grep -v '\.d$' | head -1)"

"$VENV/bin/python" - "$work" "$ours" <<'PY'
import glob, os, subprocess, sys, time
import numpy as np
import atdata
from numpy.typing import NDArray

work, ours = sys.argv[1], sys.argv[2]
RUNS = 3

@atdata.packable
class Tabular:
    features: NDArray
    label: int
    source: str

@atdata.packable
class Image:
    image: NDArray
    label: str

def write(name, samples, maxcount):
    folder = f"{work}/{name}"
    marker = f"{folder}/url.txt"
    if not os.path.exists(marker):
        os.makedirs(folder, exist_ok=True)
        print(f"[peer] Python writes {name}", file=sys.stderr)
        ds = atdata.write_samples(samples, f"{folder}/{name}.tar", maxcount=maxcount)
        open(marker, "w").write(ds.url)
    url = open(marker).read().strip()
    files = sorted(glob.glob(f"{folder}/{name}-*.tar"))
    return url, files, sum(os.path.getsize(f) for f in files)

tab_url, tab_files, tab_bytes = write("tabular", (Tabular(
    features=np.arange(128, dtype=np.float32) + i, label=i, source="synthetic/benchmark")
    for i in range(100_000)), 10_000)
img_url, img_files, img_bytes = write("image", (Image(
    image=np.full((224, 224, 3), 0.5, dtype=np.float32), label="n01440764")
    for _ in range(1_000)), 100)

def best(runs):
    """The (samples, wall, cpu) of the fastest run."""
    return min(runs, key=lambda r: r[1])

def python_read(url, kind, fields):
    def once():
        n = 0
        for batch in atdata.Dataset[kind](url).ordered(batch_size=32):
            for field in fields:
                getattr(batch, field)
            n += len(batch.samples)
        return n
    once()
    runs = []
    for _ in range(RUNS):
        cpu, wall = time.process_time(), time.perf_counter()
        n = once()
        runs.append((n, time.perf_counter() - wall, time.process_time() - cpu))
    return best(runs)

def ours_read(*args):
    out = subprocess.run([ours, *args, str(RUNS)], check=True, capture_output=True, text=True).stdout
    lines = out.strip().splitlines()
    runs = [tuple(float(x) for x in line.split()) for line in lines[:-1]]
    rss = float(lines[-1].split()[2])
    return best(runs), rss

def cat(files):
    subprocess.run(["cat", *files], check=True, stdout=subprocess.DEVNULL)
    runs = []
    for _ in range(RUNS):
        wall = time.perf_counter()
        subprocess.run(["cat", *files], check=True, stdout=subprocess.DEVNULL)
        runs.append((0, time.perf_counter() - wall, 0))
    return best(runs)[1]

rows = []
for name, url, files, size, kind, fields, rust_kind in [
    ("tabular, Python's shards", tab_url, tab_files, tab_bytes, Tabular, ["features", "label", "source"], "tabular"),
    ("image, Python's shards", img_url, img_files, img_bytes, Image, ["image", "label"], "image"),
]:
    print(f"[peer] reading {name}", file=sys.stderr)
    py = python_read(url, kind, fields)
    (n, wall, cpu), rss = ours_read(rust_kind, url)
    assert n == py[0], (n, py[0])
    rows.append((name, size, py, (n, wall, cpu), rss, cat(files)))
img_wall = rows[-1][3][1]
(copied, copy_wall, _), _ = ours_read("copy", img_url)
assert copied == img_bytes, (copied, img_bytes)
img_cat = rows[-1][5]

print("[peer] writing and reading our own tabular shards", file=sys.stderr)
own_dir = f"{work}/own"
for f in glob.glob(f"{own_dir}/*"):
    os.remove(f)
os.makedirs(own_dir, exist_ok=True)
(n, wall, cpu), rss = ours_read("own", own_dir)
own_files = sorted(glob.glob(f"{own_dir}/*.tar"))
own_bytes = sum(os.path.getsize(f) for f in own_files)
rows.append(("tabular, our shards", own_bytes, None, (n, wall, cpu), rss, cat(own_files)))

def rate(n, secs):
    return n / secs if secs > 0 else float("inf")

print(f"{'':26} {'samples':>8} {'MB':>6} | {'Python/s':>9} {'ours/s':>10} {'ours/Python':>11} | "
      f"{'ours MB/s':>9} {'cat MB/s':>9} {'of cat':>6} | {'ours/CPU-s':>10} {'Py/CPU-s':>9} | {'RSS MB':>6}")
for name, size, py, (n, wall, cpu), rss, cat_secs in rows:
    ours_rate = n / wall
    py_rate = py[0] / py[1] if py else None
    print(f"{name:26} {int(n):>8} {size / 1e6:>6.0f} | "
          f"{(f'{py_rate:,.0f}' if py else '-'):>9} {ours_rate:>10,.0f} "
          f"{(f'{ours_rate / py_rate:.0f}x' if py else '-'):>11} | "
          f"{size / 1e6 / wall:>9,.0f} {size / 1e6 / cat_secs:>9,.0f} {100 * cat_secs / wall:>5.0f}% | "
          f"{rate(n, cpu):>10,.0f} {(f'{rate(py[0], py[2]):,.0f}' if py else '-'):>9} | {rss:>6.0f}")
print(f"image, one copy into new batch-sized memory: {img_bytes / 1e6 / copy_wall:,.0f} MB/s, "
      f"{100 * img_cat / copy_wall:.0f}% of cat; ours {100 * copy_wall / img_wall:.0f}% of it")
PY
