//! `cache`: the local cache of remote shards (`ATDATA_CACHE_DIR`): list its copies, clear it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use atdata::wds::ShardCache;
use serde_json::json;

/// The cache to list or clear.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// The cache directory (by default `ATDATA_CACHE_DIR`); its limit is `ATDATA_CACHE_LIMIT`.
    #[arg(long, global = true)]
    dir: Option<PathBuf>,

    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CacheCommand {
    /// Every copy (least recently used first), its size and last use, and the total.
    Ls {
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Deletes every copy (never a shard's source): prints the bytes freed.
    Clear,
}

pub fn cache(args: CacheArgs) -> anyhow::Result<ExitCode> {
    let dir = match args.dir {
        Some(dir) => dir,
        None => std::env::var_os(atdata::wds::CACHE_DIR_VAR)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .context("no cache: give --dir or set ATDATA_CACHE_DIR")?,
    };
    anyhow::ensure!(dir.is_dir(), "no cache at {}", dir.display());
    let cache = ShardCache::open(&dir)?;
    match args.command {
        CacheCommand::Ls { json } => {
            let copies = cache.list()?;
            let total: u64 = copies.iter().map(|c| c.bytes).sum();
            if json {
                let copies: Vec<_> = copies
                    .iter()
                    .map(|c| {
                        let used = chrono::DateTime::<chrono::Utc>::from(c.last_used);
                        json!({"name": c.name, "bytes": c.bytes, "last_used": used.to_rfc3339()})
                    })
                    .collect();
                let out =
                    json!({"dir": dir, "limit": cache.limit(), "bytes": total, "copies": copies});
                println!("{out}");
            } else {
                for c in &copies {
                    let used = chrono::DateTime::<chrono::Utc>::from(c.last_used);
                    println!(
                        "{}\t{}\t{}",
                        c.name,
                        c.bytes,
                        used.format("%Y-%m-%d %H:%M:%S")
                    );
                }
                println!(
                    "{} copies, {total} bytes of {} ({})",
                    copies.len(),
                    cache.limit(),
                    dir.display()
                );
            }
        }
        CacheCommand::Clear => {
            let freed = cache.clear()?;
            println!("freed {freed} bytes ({})", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
