//! `insert`: shards through the configured store, the entry into the index, with progress.

use anyhow::Context;
use atdata::wds::expand_urls;
use atdata::{DynamicSample, InsertOptions, Schema, SchemaInference};

use crate::config::Config;
use crate::inputs;
use crate::progress::{self, CountingOpener};
use crate::shards::for_each_sample;

#[derive(Debug, clap::Args)]
pub struct InsertArgs {
    /// The dataset: a shard file, URL or brace pattern, a directory or glob of shard files, or
    /// an indexed dataset's name or CID.
    pattern: String,
    /// The name to index it under (the newest insert under a name is what `get NAME` finds).
    #[arg(long)]
    name: String,
    /// The object prefix in the store [default: the name].
    #[arg(long)]
    prefix: Option<String>,
    /// The schema its samples follow: a reference in any form, `Name@version`, or `Name` (its
    /// highest version). Every sample is checked against it before anything is indexed.
    /// Without it, a schema is inferred from every sample (a field that is ever nil is
    /// optional) and published under the name (in CamelCase) at the next patch version, in
    /// the same commit as the entry.
    #[arg(long)]
    schema: Option<String>,
    /// Re-cut into shards of at most this many samples [default: 0, keep the source's shards].
    #[arg(long, default_value_t = 0)]
    maxcount: usize,
    /// Re-cut into shards of about this many payload bytes [default: 0, keep the source's
    /// shards].
    #[arg(long, default_value_t = 0)]
    maxsize: u64,
    /// Print the entry as JSON.
    #[arg(long)]
    json: bool,
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

/// The schema that every sample of `pattern` follows; a sample that contradicts the ones
/// before it is an error naming its key, its shard and the field.
fn infer(
    pattern: &str,
    opener: &CountingOpener,
    name: &str,
    max_member: u64,
) -> anyhow::Result<Schema> {
    let mut inference = SchemaInference::default();
    let mut samples = 0usize;
    for_each_sample(pattern, opener, max_member, |_, shard, sample| {
        let payload = sample
            .member("msgpack")
            .with_context(|| format!("{shard}: sample `{}` has no msgpack member", sample.key))?;
        inference.add(payload).with_context(|| {
            format!(
                "{shard}: sample `{}` does not fit the schema inferred so far (or pass --schema)",
                sample.key
            )
        })?;
        samples += 1;
        Ok(true)
    })?;
    inference
        .finish(&camel_case(name))
        .with_context(|| format!("inferring a schema from {samples} sample(s) (or pass --schema)"))
}

pub async fn insert(config: &Config, args: InsertArgs) -> anyhow::Result<()> {
    let (index, store) = config.index_with_store().await?;
    let input = inputs::resolve_in(&index, &args.pattern).await?;
    let total = progress::total_size(&expand_urls(&input.url)?, input.entry.as_ref());
    let (schema, schema_ref) = match &args.schema {
        Some(r) => {
            let full = index.resolve_schema_ref(r).await?;
            (index.decode_schema(&full).await?, Some(full))
        }
        None => {
            let (pattern, name) = (input.url.clone(), args.name.clone());
            let max_member = config.max_member_bytes();
            let bar = progress::bar(total, "inferring the schema from every sample");
            let opener = CountingOpener::new(bar.clone());
            let inferred =
                tokio::task::spawn_blocking(move || infer(&pattern, &opener, &name, max_member))
                    .await;
            bar.finish_and_clear();
            let mut schema = inferred??;
            schema.description = Some(format!("inferred by `atdata insert` from {}", args.pattern));
            (schema, None)
        }
    };

    let bar = progress::bar(total, format!("to {store}"));
    let ds = atdata::Dataset::<DynamicSample>::with_schema(&input.url, schema)?
        .with_max_member_bytes(config.max_member_bytes())
        .with_opener(CountingOpener::new(bar.clone()));
    let options = InsertOptions {
        prefix: args.prefix.clone(),
        publish_schema: schema_ref.is_none(),
        schema_ref,
        maxcount: args.maxcount,
        maxsize: args.maxsize,
        ..Default::default()
    };
    // An insert identical to the newest entry under the name returns that entry.
    let newest = index
        .get_entry_by_name(&args.name)
        .await
        .ok()
        .map(|e| e.cid());
    let entry = index.insert_dataset_with(&ds, &args.name, options).await;
    bar.finish_and_clear();
    let entry = entry?;
    if args.json {
        println!("{}", entry.to_json());
    } else if newest == Some(entry.cid()) {
        println!(
            "unchanged: {} ({}) already holds these shards; nothing written",
            entry.name,
            entry.cid()
        );
    } else {
        let samples = entry
            .sample_count()
            .map(|n| format!(", {n} samples"))
            .unwrap_or_default();
        println!(
            "inserted {} ({}): {} shard(s){samples} in {store}",
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
