//! Index latency against the Redis of `scripts/services.sh` (database 63, emptied first), and
//! the SQLite provider in a temporary file, next to raw Redis round trips measured in the same
//! run: `add_entry`, `get_entry`, `get_entry_by_name` and `all_entries` at two index sizes.
//!
//! `cargo bench -p atdata-index --bench index` measures Redis at 1k and 100k entries and
//! SQLite at 1k and 10k (figures in docs/performance.md); without `--bench` (as
//! `cargo test --benches` runs it), 200 and 1k. Needs `eval "$(bash scripts/services.sh)"`.

use std::time::{Duration, Instant};

use atdata_derive::packable;
use atdata_index::LocalIndex;
use atdata_wds::Dataset;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[path = "../../../tests/support/redis_db.rs"]
mod redis_db;
#[path = "../../../tests/support/services.rs"]
mod services;

/// The sample type the entries name.
#[packable(crate = "atdata_codec")]
struct Row {
    id: i64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Lookups per measurement.
const LOOKUPS: usize = 2000;

fn main() -> Result<(), BoxError> {
    let full = std::env::args().any(|a| a == "--bench");
    let (redis_sizes, sqlite_sizes) = if full {
        ([1_000, 100_000], [1_000, 10_000])
    } else {
        ([200, 1_000], [200, 1_000])
    };
    let rt = if std::env::var_os("ATDATA_BENCH_CURRENT_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    };
    rt.block_on(async {
        // Database 63 of the test Redis (`ATDATA_TEST_REDIS_URL`), emptied only if it is ours.
        let url = redis_db::fresh_db(63).await;
        let client = redis::Client::open(url.as_str())?;
        let raw = client.get_multiplexed_async_connection().await?;
        let ping = mean(&[(); LOOKUPS], |()| {
            let mut raw = raw.clone();
            async move {
                let _: String = redis::cmd("PING").query_async(&mut raw).await?;
                Ok(())
            }
        })
        .await?;
        println!("baseline: raw Redis PING round trip {}", us(ping));

        let index = LocalIndex::connect_redis(&url).await?;
        run("redis", &index, redis_sizes, Some(&raw)).await?;
        redis_db::fresh_db(63).await;

        let dir = tempfile::tempdir()?;
        let index = LocalIndex::open_sqlite(dir.path().join("index.db")).await?;
        run("sqlite", &index, sqlite_sizes, None).await
    })
}

async fn run(
    provider: &str,
    index: &LocalIndex,
    sizes: [usize; 2],
    raw: Option<&redis::aio::MultiplexedConnection>,
) -> Result<(), BoxError> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut count = 0;
    for size in sizes {
        // Fill up to `size - 1000` concurrently, then time the last 1,000 inserts one by one.
        let timed = size.min(1000);
        fill(index, count, size - timed).await?;
        let started = Instant::now();
        for i in size - timed..size {
            add(index, i).await?;
        }
        let add_mean = started.elapsed() / timed as u32;
        count = size;

        // What each lookup asks for is drawn (and its CID computed) before the clock starts.
        let picks: Vec<usize> = (0..LOOKUPS).map(|_| rng.random_range(0..size)).collect();
        let cids = picks
            .iter()
            .map(|&i| Ok(atdata_codec::entry_cid(&schema_ref(), &[url_of(i)])?.to_string()))
            .collect::<Result<Vec<String>, BoxError>>()?;
        let names: Vec<String> = picks.iter().map(|i| format!("e{i}")).collect();
        let get = mean(&cids, |cid| async move {
            index.get_entry(cid).await?;
            Ok(())
        })
        .await?;
        let by_name = mean(&names, |name| async move {
            index.get_entry_by_name(name).await?;
            Ok(())
        })
        .await?;
        let rounds = if size > 10_000 { 3 } else { 10 };
        let list = mean(&vec![size; rounds], |&n| async move {
            assert_eq!(index.all_entries().await?.len(), n);
            Ok(())
        })
        .await?;
        print!(
            "{provider} at {size} entries: add_entry {}, get_entry {}, get_entry_by_name {}, all_entries {:.1} ms",
            us(add_mean),
            us(get),
            us(by_name),
            list.as_secs_f64() * 1e3
        );
        if let Some(raw) = raw {
            let hgetall = mean(&cids, |cid| {
                let mut raw = raw.clone();
                async move {
                    let _: Vec<(String, Vec<u8>)> = redis::cmd("HGETALL")
                        .arg(format!("LocalDatasetEntry:{cid}"))
                        .query_async(&mut raw)
                        .await?;
                    Ok(())
                }
            })
            .await?;
            print!(" (raw HGETALL {})", us(hgetall));
        }
        println!();
    }
    Ok(())
}

/// The reference `add_entry` writes by default (the index's form, Python's).
fn schema_ref() -> String {
    atdata_codec::SchemaRef::new("Row", "1.0.0").to_string()
}

fn url_of(i: usize) -> String {
    format!("rows/{i:07}.tar")
}

async fn add(index: &LocalIndex, i: usize) -> Result<(), BoxError> {
    let ds = Dataset::<Row>::new(url_of(i))?;
    index.add_entry(&ds, format!("e{i}"), None, None).await?;
    Ok(())
}

/// Adds entries `from..to` on 16 concurrent tasks.
async fn fill(index: &LocalIndex, from: usize, to: usize) -> Result<(), BoxError> {
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let index = index.clone();
            tokio::spawn(async move {
                for i in (from + t..to).step_by(16) {
                    add(&index, i).await?;
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// The mean time of running `f` on each item in turn.
async fn mean<'a, T, F, Fut>(items: &'a [T], mut f: F) -> Result<Duration, BoxError>
where
    F: FnMut(&'a T) -> Fut,
    Fut: std::future::Future<Output = Result<(), BoxError>>,
{
    let started = Instant::now();
    for item in items {
        f(item).await?;
    }
    Ok(started.elapsed() / items.len() as u32)
}

fn us(d: Duration) -> String {
    format!("{:.0} us", d.as_secs_f64() * 1e6)
}
