//! `insert`: shards through the configured store, the entry into the index, with progress.

use std::io::{IsTerminal, Read};

use anyhow::Context;
use atdata::wds::{ShardOpener, expand_urls};
use atdata::{DefaultOpener, DynamicSample, InsertOptions, Schema, ShardOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::shards::for_each_sample;

#[derive(Debug, clap::Args)]
pub struct InsertArgs {
    /// The dataset: a shard path or URL, brace patterns allowed.
    pattern: String,
    /// The name to index it under (the newest insert under a name is what `get NAME` finds).
    #[arg(long)]
    name: String,
    /// The object prefix in the store [default: the name].
    #[arg(long)]
    prefix: Option<String>,
    /// The schema reference its samples follow (every sample is checked against it before
    /// anything is indexed); without it, a schema is inferred from the first 100 samples and
    /// published under the name (in CamelCase) at the next patch version, in the same commit
    /// as the entry.
    #[arg(long)]
    schema: Option<String>,
    /// Samples per shard at most.
    #[arg(long, default_value_t = ShardOptions::default().maxcount)]
    maxcount: usize,
    /// Payload bytes per shard before rolling over.
    #[arg(long, default_value_t = ShardOptions::default().maxsize)]
    maxsize: u64,
    /// Print the entry as JSON.
    #[arg(long)]
    json: bool,
}

/// Opens shards through the default opener, counting the bytes read on a progress bar.
#[derive(Clone)]
struct CountingOpener {
    inner: DefaultOpener,
    bar: ProgressBar,
}

struct Counting {
    inner: Box<dyn Read + Send>,
    bar: ProgressBar,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl ShardOpener for CountingOpener {
    fn open(&self, url: &str) -> atdata::wds::Result<Box<dyn Read + Send>> {
        Ok(Box::new(Counting {
            inner: self.inner.open(url)?,
            bar: self.bar.clone(),
        }))
    }
}

/// `golden-images` as `GoldenImages`: a schema name from a dataset name.
fn camel_case(name: &str) -> String {
    let mut out = String::new();
    for word in name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() { "Sample".into() } else { out }
}

/// Samples looked at to infer a schema.
const INFER_FROM: usize = 100;

/// The schema of the first samples of `pattern`.
fn infer(pattern: &str, name: &str, max_member: u64) -> anyhow::Result<Schema> {
    let mut payloads = Vec::new();
    for_each_sample(pattern, max_member, |_, _, mut sample| {
        let at = sample.members.iter().position(|(e, _)| e == "msgpack");
        let payload = at
            .map(|i| sample.members.swap_remove(i).1)
            .with_context(|| format!("sample {} has no msgpack member", sample.key))?;
        payloads.push(payload);
        Ok(payloads.len() < INFER_FROM)
    })?;
    Schema::infer(&camel_case(name), payloads.iter().map(Vec::as_slice)).with_context(|| {
        format!(
            "from the first {} sample(s) (or pass --schema)",
            payloads.len()
        )
    })
}

/// The total size of the shards when they are all local files (for the bar's length).
fn local_size(pattern: &str) -> Option<u64> {
    expand_urls(pattern)
        .ok()?
        .iter()
        .map(|u| {
            std::fs::metadata(u.strip_prefix("file://").unwrap_or(u))
                .ok()
                .map(|m| m.len())
        })
        .sum()
}

pub async fn insert(config: &Config, args: InsertArgs) -> anyhow::Result<()> {
    let (index, store) = config.index_with_store().await?;
    let (schema, schema_ref) = match &args.schema {
        Some(r) => (index.decode_schema(r).await?, Some(r.clone())),
        None => {
            let (pattern, name) = (args.pattern.clone(), args.name.clone());
            let max_member = config.max_member_bytes();
            let mut schema =
                tokio::task::spawn_blocking(move || infer(&pattern, &name, max_member)).await??;
            schema.description = Some(format!("inferred by `atdata insert` from {}", args.pattern));
            (schema, None)
        }
    };

    let bar = if std::io::stderr().is_terminal() {
        let bar = match local_size(&args.pattern) {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::new_spinner(),
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(format!("to {store}"));
        bar
    } else {
        ProgressBar::hidden()
    };
    let ds = atdata::Dataset::<DynamicSample>::with_schema(&args.pattern, schema)?
        .with_max_member_bytes(config.max_member_bytes())
        .with_opener(CountingOpener {
            inner: DefaultOpener::default(),
            bar: bar.clone(),
        });
    let options = InsertOptions {
        prefix: args.prefix.clone(),
        publish_schema: schema_ref.is_none(),
        schema_ref,
        maxcount: args.maxcount,
        maxsize: args.maxsize,
        ..Default::default()
    };
    let entry = index.insert_dataset_with(&ds, &args.name, options).await;
    bar.finish_and_clear();
    let entry = entry?;
    if args.json {
        println!("{}", entry.to_json());
    } else {
        println!(
            "inserted {} ({}): {} shard(s) in {store}",
            entry.name,
            entry.cid(),
            entry.data_urls.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::camel_case;

    #[test]
    fn schema_names_come_from_dataset_names() {
        assert_eq!(camel_case("golden-images"), "GoldenImages");
        assert_eq!(camel_case("my_data.v2"), "MyDataV2");
        assert_eq!(camel_case("--"), "Sample");
    }
}
