//! `sidecar`: write the sidecar index (`<stem>.idx`) of shards that have none.

use std::io::Write;

use anyhow::Context;
use atdata::wds::{ShardOpener, Sidecar, expand_urls, sidecar_url};
use atdata::{Credentials, DataStore, S3DataStore};

use crate::config::Config;
use crate::inputs;
use crate::progress::{self, CountingOpener};

/// Builds each shard's sidecar from its headers (one streamed read, no payload decoded) and
/// writes it beside the shard: a local file written atomically, or a sibling S3 object. A
/// compressed shard is skipped (it cannot be read at an offset). Prints one line per shard.
pub async fn sidecar(config: &Config, args: &[String]) -> anyhow::Result<()> {
    for arg in args {
        let input = inputs::resolve(config, arg).await?;
        let shards = expand_urls(&input.url)?;
        let counts = input.entry.as_ref().map(|e| e.shard_facts());
        for (at, shard) in shards.iter().enumerate() {
            let Some(target) = sidecar_url(shard) else {
                println!("skipped\t{shard}\tcompressed: no random access");
                continue;
            };
            let bar = progress::bar(
                progress::total_size(std::slice::from_ref(shard), None),
                format!("indexing {shard}"),
            );
            let opener = CountingOpener::new(bar.clone());
            let (url, read) = (shard.clone(), opener.clone());
            let built =
                tokio::task::spawn_blocking(move || Sidecar::build(read.open(&url)?, &url)).await?;
            bar.finish_and_clear();
            let built = built?;
            let recorded = counts.as_ref().and_then(|c| c.get(at)?.1.samples);
            if let Some(n) = recorded.filter(|&n| n != built.len() as u64) {
                anyhow::bail!(
                    "{shard}: the index records {n} samples, the shard holds {}",
                    built.len()
                );
            }
            write(&built, &target).await?;
            println!("wrote\t{target}\t{} samples", built.len());
        }
    }
    Ok(())
}

/// Stores `sidecar` at `target`: a local path (or `file://` URL), or `s3://bucket/key`
/// through a store made from the environment's credentials.
async fn write(sidecar: &Sidecar, target: &str) -> anyhow::Result<()> {
    let Some(rest) = target.strip_prefix("s3://") else {
        let path = target.strip_prefix("file://").unwrap_or(target);
        return Ok(sidecar.write_file(path)?);
    };
    let (bucket, key) = rest
        .split_once('/')
        .with_context(|| format!("{target}: no object key"))?;
    let credentials = Credentials::from_env()
        .context("an s3:// shard needs S3 credentials (AWS_ACCESS_KEY_ID, ...)")?;
    let store = S3DataStore::new(credentials, bucket)?;
    let text = sidecar.to_text()?;
    let key = key.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut upload = store.create_shard(&key)?;
        upload.write_all(text.as_bytes())?;
        upload.finish()?;
        upload.commit()?;
        Ok(())
    })
    .await?
}
