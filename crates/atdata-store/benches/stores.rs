//! Store throughput against the S3 server of `scripts/services.sh`: `write_shards` and a
//! streaming read of the stored shards, next to raw `object_store` multipart puts and streaming
//! gets of the same bytes in the same run; decoded `ordered()` reads next to shuffled loader
//! epochs (`Dataset::loader`) on one and two ranks; with this process's peak RSS.
//!
//! `cargo bench -p atdata-store --bench stores` writes about 1 GB (figures in
//! docs/performance.md); without `--bench` (as `cargo test --benches` runs it) about 24 MB.
//! Needs the services' environment (`eval "$(bash scripts/services.sh)"`).

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use atdata_codec::Packable;
use atdata_derive::packable;
use atdata_store::{Credentials, DataStore, DataStoreExt, S3DataStore, StoreOpener};
use atdata_wds::{
    CachedOpener, Dataset, LoaderOptions, ShardCache, ShardOpener, ShardOptions, ShardWriter,
};
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// A 1 MiB sample.
#[packable(crate = "atdata_codec")]
struct Blob {
    id: i64,
    data: Vec<u8>,
}

#[cfg(feature = "http")]
#[path = "../../../tests/support/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "../../../tests/support/services.rs"]
mod services;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let full = std::env::args().any(|a| a == "--bench");
    let (samples, shard_mb) = if full { (1000, 100) } else { (24, 8) };
    // The test S3 server (`ATDATA_TEST_S3_*`, on loopback), under a prefix of this run's own.
    let s3 = services::s3();
    let bucket = s3.bucket.clone();
    let credentials = Credentials::from_map([
        ("AWS_ENDPOINT", s3.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", &s3.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key),
        ("AWS_REGION", &s3.region),
    ])?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    // The source: local shards of 1 MiB samples.
    let dir = tempfile::tempdir()?;
    let pattern = dir.path().join("src-%04d.tar");
    let mut writer = ShardWriter::new(
        pattern.to_str().ok_or("utf-8")?,
        ShardOptions {
            maxsize: shard_mb << 20,
            ..Default::default()
        },
    )?;
    for id in 0..samples {
        let data = (0..1 << 20).map(|i: usize| (i as i64 ^ id) as u8).collect();
        writer.write(&Blob { id, data }.as_wds(&format!("{id:06}")))?;
    }
    let local = writer.finish()?;
    let bytes: u64 = local
        .iter()
        .map(|p| p.metadata().map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let url = format!(
        "{{{}}}",
        local
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let source = Dataset::<Blob>::new(&url)?;
    let mb = bytes as f64 / 1e6;
    println!("{} samples, {} shards, {:.0} MB", samples, local.len(), mb);

    // Raw object_store: multipart puts of the same shard files, then streaming gets.
    // Built from the test settings alone (never the environment: with no AWS_* there,
    // object_store would look for credentials on the cloud metadata address).
    let builder = AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_region(&s3.region)
        .with_access_key_id(&s3.access_key_id)
        .with_secret_access_key(&s3.secret_access_key)
        .with_endpoint(&s3.endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false);
    let raw: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
    let prefix = format!("bench/{}", std::process::id());
    let start = Instant::now();
    let raw_paths: Vec<Path> = rt.block_on(async {
        let mut paths = Vec::new();
        for (i, file) in local.iter().enumerate() {
            let path = Path::from(format!("{prefix}/raw-{i:04}.tar"));
            let upload = raw.put_multipart(&path).await?;
            let mut write = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
            let mut f = std::fs::File::open(file)?;
            let mut buf = vec![0u8; 8 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                write.wait_for_capacity(2).await?;
                write.put(PutPayload::from(buf[..n].to_vec()).into());
            }
            write.finish().await?;
            paths.push(path);
        }
        Ok::<_, BoxError>(paths)
    })?;
    let raw_put = mb / start.elapsed().as_secs_f64();

    // write_shards of the same samples.
    let store = S3DataStore::new(credentials, &bucket)?;
    let start = Instant::now();
    let written = rt.block_on(store.write_shards(
        &source,
        &prefix,
        ShardOptions {
            maxsize: shard_mb << 20,
            ..Default::default()
        },
    ))?;
    let put = mb / start.elapsed().as_secs_f64();

    let start = Instant::now();
    let got: u64 = rt.block_on(async {
        let mut total = 0u64;
        for path in &raw_paths {
            total += drain(raw.as_ref(), path).await?;
        }
        Ok::<_, BoxError>(total)
    })?;
    let raw_get = got as f64 / 1e6 / start.elapsed().as_secs_f64();

    // Streaming read through a Dataset (raw samples: the store path, not the codec).
    let stored = format!("{{{}}}", written.urls().join(","));
    let start = Instant::now();
    let dataset = Dataset::<Blob>::new(&stored)?.with_opener(StoreOpener::new(store.clone()));
    let mut read = 0u64;
    for sample in dataset.raw_samples()? {
        read += sample?
            .members
            .iter()
            .map(|(_, d)| d.len() as u64)
            .sum::<u64>();
    }
    let get = mb / start.elapsed().as_secs_f64();
    if read != samples as u64 * ((1 << 20) + 12) && read < samples as u64 * (1 << 20) {
        return Err(format!("read back {read} payload bytes").into());
    }

    println!(
        "{:<34} {:>10} {:>14} {:>10}",
        "", "MB/s", "raw MB/s", "of raw"
    );
    println!(
        "{:<34} {put:>10.0} {raw_put:>14.0} {:>9.0}%",
        "write_shards (multipart, sha256)",
        100.0 * put / raw_put
    );
    println!(
        "{:<34} {get:>10.0} {raw_get:>14.0} {:>9.0}%",
        "streaming read (Dataset)",
        100.0 * get / raw_get
    );
    remote_reads(&rt, &raw, &raw_paths, &store, &written, &url, mb)?;

    // Decoded reads from S3: ordered(8), then shuffled loader epochs on one rank and on two
    // ranks side by side (shuffle blocks of 8 samples: 8 MiB; see docs/datasets.md).
    let batch = 8;
    let start = Instant::now();
    let mut n = 0;
    for b in dataset.ordered(batch)? {
        n += b?.len();
    }
    let ordered = start.elapsed().as_secs_f64();
    if n != samples as usize {
        return Err(format!("ordered read {n} samples").into());
    }
    println!(
        "{:<34} {:>10} {:>14} {:>10}",
        "", "MB/s", "samples/s", "of ordered"
    );
    let line = |name: &str, secs: f64, n: usize, mb: f64| {
        println!(
            "{name:<34} {:>10.0} {:>14.0} {:>9.0}%",
            mb / secs,
            n as f64 / secs,
            100.0 * ordered / secs
        );
    };
    line("ordered(8) from S3", ordered, n, mb);
    for world in [1, 2] {
        let (secs, n) = loader_epoch(&dataset, world, batch, 8)?;
        line(&format!("loader, {world} rank(s), from S3"), secs, n, mb);
    }
    // Building a missing sidecar from S3: one streamed pass over a stored shard's headers.
    let shard = &written.urls()[0];
    let shard_mb = written.sizes()[0] as f64 / 1e6;
    let start = Instant::now();
    let built = atdata_wds::Sidecar::build(store.open_shard(shard)?, shard)?;
    let build = shard_mb / start.elapsed().as_secs_f64();
    println!(
        "{:<34} {build:>10.0} {:>14} {:>10}",
        format!("sidecar build, streamed ({} samples)", built.len()),
        "",
        ""
    );
    // get(i) from S3: one ranged GET per sample (after a pass that reads the sidecars), next
    // to a raw object_store ranged get of as many bytes in the same run; for these 1 MiB
    // samples and for small (tabular-sized, 600-byte) ones.
    let gets = if full { 1_000 } else { 50 };
    println!(
        "{:<34} {:>10} {:>14} {:>14} {:>14}",
        "", "p50 ms", "p99 ms", "raw p50 ms", "raw p99 ms"
    );
    let rows = Dataset::<Blob>::new(&stored)?.with_opener(StoreOpener::new(store.clone()));
    let (got, raw_got) = get_latencies(&rt, &rows, &raw, &raw_paths[0], 1 << 20, gets)?;
    print_latencies(&format!("get(i), 1 MiB samples ({gets})"), got, raw_got);
    let small_dir = dir.path().join("small");
    let mut writer = ShardWriter::new(
        small_dir.join("small-%04d.tar").to_str().ok_or("utf-8")?,
        ShardOptions {
            maxcount: 2_000,
            ..Default::default()
        },
    )?;
    for id in 0..10_000 {
        let data = vec![(id % 251) as u8; 600];
        writer.write(&Blob { id, data }.as_wds(&format!("{id:06}")))?;
    }
    let small_local = writer.finish()?;
    let small_url = small_dir.join("small-{0000..0004}.tar");
    let small_source = Dataset::<Blob>::new(small_url.to_str().ok_or("utf-8")?)?;
    let small = rt.block_on(store.write_shards(
        &small_source,
        &format!("{prefix}/small"),
        atdata_store::WriteOptions::default(),
    ))?;
    let raw_small = Path::from(format!("{prefix}/raw-small.tar"));
    rt.block_on(raw.put(&raw_small, std::fs::read(&small_local[0])?.into()))?;
    let small_rows = Dataset::<Blob>::new(format!("{{{}}}", small.urls().join(",")))?
        .with_opener(StoreOpener::new(store.clone()));
    let (got, raw_got) = get_latencies(&rt, &small_rows, &raw, &raw_small, 1024, gets)?;
    print_latencies(&format!("get(i), 600-byte samples ({gets})"), got, raw_got);
    // The loader over those small samples from S3 (default shuffle block), next to ordered.
    let small_mb = small.sizes().iter().sum::<u64>() as f64 / 1e6;
    let start = Instant::now();
    let mut n = 0;
    for b in small_rows.ordered(64)? {
        n += b?.len();
    }
    let ordered = start.elapsed().as_secs_f64();
    let (one, n1) = loader_epoch(&small_rows, 1, 64, 0)?;
    let (two, n2) = loader_epoch(&small_rows, 2, 64, 0)?;
    println!(
        "600-byte samples from S3, samples/s: ordered(64) {:.0}, loader 1 rank {:.0} ({:.0}%), 2 ranks {:.0} ({:.0}%); {small_mb:.0} MB",
        n as f64 / ordered,
        n1 as f64 / one,
        100.0 * ordered / one,
        n2 as f64 / two,
        100.0 * ordered / two
    );
    println!("peak RSS of this process: {:.0} MB", peak_rss_mb()?);

    rt.block_on(async {
        for path in &raw_paths {
            raw.delete(path).await?;
        }
        raw.delete(&raw_small).await?;
        for url in written.urls().iter().chain(small.urls()) {
            store.delete_shard(url).await?;
        }
        Ok::<_, BoxError>(())
    })?;
    Ok(())
}

/// Streams every payload of `ds` (raw samples: the store path, not the codec); MB/s of `mb`.
fn stream_mb_s<O: ShardOpener>(ds: &Dataset<Blob, O>, mb: f64) -> Result<f64, BoxError> {
    let start = Instant::now();
    let mut read = 0u64;
    for sample in ds.raw_samples()? {
        read += sample?
            .members
            .iter()
            .map(|(_, d)| d.len() as u64)
            .sum::<u64>();
    }
    if (read as f64) < mb * 1e6 * 0.9 {
        return Err(format!("read back only {read} payload bytes").into());
    }
    Ok(mb / start.elapsed().as_secs_f64())
}

/// Remote reads beside their baselines, each with the peak RSS of its own phase: S3 streamed
/// through read windows of 8, 32 (the default) and 128 MiB next to raw `object_store` GETs of
/// the same objects, one at a time and four at once; a first epoch through a shard cache and
/// the second from it, next to reading the local source shards; and (feature `http`) shards
/// served over http on loopback next to raw `object_store` HTTP GETs.
fn remote_reads(
    rt: &tokio::runtime::Runtime,
    raw: &Arc<dyn ObjectStore>,
    raw_paths: &[Path],
    store: &S3DataStore,
    written: &atdata_store::WrittenShards,
    local_url: &str,
    mb: f64,
) -> Result<(), BoxError> {
    println!(
        "{:<34} {:>10} {:>14} {:>10}",
        "remote reads", "MB/s", "peak RSS MB", "of base"
    );
    let row = |name: &str, speed: f64, rss: f64, base: f64| {
        println!(
            "{name:<34} {speed:>10.0} {rss:>14.0} {:>9.0}%",
            100.0 * speed / base
        );
    };
    reset_peak_rss();
    let start = Instant::now();
    rt.block_on(async {
        for path in raw_paths {
            drain(raw.as_ref(), path).await?;
        }
        Ok::<_, BoxError>(())
    })?;
    let one_at_a_time = mb / start.elapsed().as_secs_f64();
    row(
        "raw GETs, one at a time",
        one_at_a_time,
        peak_rss_mb()?,
        one_at_a_time,
    );
    reset_peak_rss();
    let start = Instant::now();
    rt.block_on(async {
        let gets = futures::stream::iter(raw_paths).map(|path| drain(raw.as_ref(), path));
        let mut gets = gets.buffer_unordered(4);
        while let Some(done) = gets.next().await {
            done?;
        }
        Ok::<_, BoxError>(())
    })?;
    let four = mb / start.elapsed().as_secs_f64();
    row(
        "raw GETs, four at once",
        four,
        peak_rss_mb()?,
        one_at_a_time,
    );
    let stored = format!("{{{}}}", written.urls().join(","));
    let base = one_at_a_time.max(four);
    for window in [8u64 << 20, 32 << 20, 128 << 20] {
        reset_peak_rss();
        let opener = StoreOpener::new(store.clone().with_read_window(window));
        let speed = stream_mb_s(&Dataset::<Blob>::new(&stored)?.with_opener(opener), mb)?;
        row(
            &format!("Dataset, {} MiB window", window >> 20),
            speed,
            peak_rss_mb()?,
            base,
        );
    }
    // The cache: a first epoch fills it, a second reads it; beside the local source shards.
    let cache_dir = tempfile::tempdir()?;
    let cache = ShardCache::new(cache_dir.path(), 1 << 40)?;
    let sums = written
        .urls()
        .iter()
        .cloned()
        .zip(written.checksums().iter().cloned());
    let cached = Dataset::<Blob>::new(&stored)?.with_opener(CachedOpener::new(
        StoreOpener::new(store.clone()),
        cache,
        sums,
    ));
    reset_peak_rss();
    let local = stream_mb_s(&Dataset::<Blob>::new(local_url)?, mb)?;
    row(
        "local disk (the source shards)",
        local,
        peak_rss_mb()?,
        local,
    );
    reset_peak_rss();
    let first = stream_mb_s(&cached, mb)?;
    row("cache, first epoch (from S3)", first, peak_rss_mb()?, base);
    reset_peak_rss();
    let second = stream_mb_s(&cached, mb)?;
    row(
        "cache, second epoch (of local)",
        second,
        peak_rss_mb()?,
        local,
    );
    #[cfg(feature = "http")]
    http_reads(rt, local_url, mb, row)?;
    Ok(())
}

/// Shards served over http on loopback (the tests' file server), read through a `Dataset` and
/// by raw `object_store` HTTP GETs one at a time.
#[cfg(feature = "http")]
fn http_reads(
    rt: &tokio::runtime::Runtime,
    local_url: &str,
    mb: f64,
    row: impl Fn(&str, f64, f64, f64),
) -> Result<(), BoxError> {
    let files = atdata_wds::expand_urls(local_url)?;
    let dir = std::path::Path::new(&files[0]).parent().ok_or("a folder")?;
    let server = http::FileServer::start(dir.to_owned(), None);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    let raw = object_store::http::HttpBuilder::new()
        .with_url(server.url(""))
        .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
        .build()?;
    reset_peak_rss();
    let start = Instant::now();
    rt.block_on(async {
        for name in &names {
            drain(&raw, &Path::from(name.as_str())).await?;
        }
        Ok::<_, BoxError>(())
    })?;
    let raw_speed = mb / start.elapsed().as_secs_f64();
    row(
        "raw http GETs, one at a time",
        raw_speed,
        peak_rss_mb()?,
        raw_speed,
    );
    let urls: Vec<String> = names.iter().map(|n| server.url(n)).collect();
    reset_peak_rss();
    let ds = Dataset::<Blob>::new(format!("{{{}}}", urls.join(",")))?
        .with_opener(StoreOpener::from_env());
    let speed = stream_mb_s(&ds, mb)?;
    row("Dataset over http", speed, peak_rss_mb()?, raw_speed);
    Ok(())
}

/// Streams the object at `path` to nowhere: its bytes.
async fn drain(store: &dyn ObjectStore, path: &Path) -> Result<u64, BoxError> {
    let mut stream = store.get(path).await?.into_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        total += chunk?.len() as u64;
    }
    Ok(total)
}

/// Starts a new peak-RSS measurement (Linux: writing 5 to `clear_refs` resets `VmHWM`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// One shuffled loader epoch of `world` ranks side by side (a thread each): its seconds and
/// the samples read.
fn loader_epoch(
    dataset: &Dataset<Blob, StoreOpener>,
    world: usize,
    global_batch: usize,
    shuffle_block: usize,
) -> Result<(f64, usize), BoxError> {
    let start = Instant::now();
    let counts = std::thread::scope(|scope| {
        let ranks: Vec<_> = (0..world)
            .map(|rank| {
                scope.spawn(move || {
                    let options = LoaderOptions {
                        global_batch,
                        seed: Some(1),
                        rank,
                        world_size: world,
                        shuffle_block,
                        ..Default::default()
                    };
                    let mut n = 0;
                    for batch in dataset.loader(options)? {
                        n += batch?.len();
                    }
                    Ok::<_, BoxError>(n)
                })
            })
            .collect();
        ranks
            .into_iter()
            .map(|r| r.join().map_err(|_| BoxError::from("a rank panicked"))?)
            .collect::<Result<Vec<_>, BoxError>>()
    })?;
    Ok((start.elapsed().as_secs_f64(), counts.iter().sum()))
}

/// `gets` latencies of `rows.get(i)` at pseudo-random `i` (after a warm-up pass that reads
/// the sidecars), and of raw ranged gets of `span` bytes of `raw_path` at as many places.
fn get_latencies(
    rt: &tokio::runtime::Runtime,
    rows: &Dataset<Blob, StoreOpener>,
    raw: &Arc<dyn ObjectStore>,
    raw_path: &Path,
    span: u64,
    gets: usize,
) -> Result<(Vec<std::time::Duration>, Vec<std::time::Duration>), BoxError> {
    let count = rows.len()?;
    let indices: Vec<usize> = (0..gets as u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17) as usize % count)
        .collect();
    for &i in indices.iter().take(gets / 5) {
        rows.get(i)?;
    }
    let mut got = Vec::with_capacity(gets);
    for &i in &indices {
        let start = Instant::now();
        let blob = rows.get(i)?;
        got.push(start.elapsed());
        if blob.id != i as i64 {
            return Err(format!("get({i}) read sample {}", blob.id).into());
        }
    }
    let mut raw_got = Vec::with_capacity(gets);
    rt.block_on(async {
        for &i in &indices {
            let at = (i as u64 % 6) * span;
            let start = Instant::now();
            raw.get_range(raw_path, at..at + span).await?;
            raw_got.push(start.elapsed());
        }
        Ok::<_, BoxError>(())
    })?;
    Ok((got, raw_got))
}

fn print_latencies(
    name: &str,
    mut got: Vec<std::time::Duration>,
    mut raw_got: Vec<std::time::Duration>,
) {
    let (p50, p99) = percentiles_ms(&mut got);
    let (f50, f99) = percentiles_ms(&mut raw_got);
    println!("{name:<34} {p50:>10.2} {p99:>14.2} {f50:>14.2} {f99:>14.2}");
}

/// p50 and p99 in milliseconds.
fn percentiles_ms(times: &mut [std::time::Duration]) -> (f64, f64) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
}

fn peak_rss_mb() -> Result<f64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmHWM")?;
    Ok(kb / 1024.0)
}
