//! `ls`, `get` and `schema`: reading the index.

use std::process::ExitCode;

use atdata::index::Error as IndexError;
use atdata::{LocalDatasetEntry, LocalIndex};
use futures::StreamExt;
use serde_json::Value as Json;

use crate::config::Config;

/// Names a "did you mean" looks through at most (the lookup itself stays one round trip).
const SUGGEST_FROM: usize = 10_000;

/// The entry `name_or_cid` names: by CID when it parses as one (and is there), else by name;
/// when neither, the error suggests the nearest names of the index.
pub async fn find(index: &LocalIndex, name_or_cid: &str) -> anyhow::Result<LocalDatasetEntry> {
    match index.find_entry(name_or_cid).await {
        Err(e @ IndexError::NotFound { .. }) => {
            let names: Vec<String> = index
                .entries()
                .take(SUGGEST_FROM)
                .filter_map(|e| async move { e.ok().map(|e| e.name) })
                .collect()
                .await;
            match nearest(name_or_cid, &names) {
                Some(near) => Err(anyhow::anyhow!("{e} (did you mean `{near}`?)")),
                None => Err(e.into()),
            }
        }
        found => Ok(found?),
    }
}

/// The name closest to `asked`, when one is close enough to be a slip: within a third of
/// its length in edits (at least 2), or containing it.
fn nearest<'n>(asked: &str, names: &'n [String]) -> Option<&'n str> {
    let limit = (asked.chars().count() / 3).max(2);
    names
        .iter()
        .map(|n| (strsim::levenshtein(asked, n), n))
        .filter(|(d, n)| *d <= limit || n.contains(asked))
        .min()
        .map(|(_, n)| n.as_str())
}

/// `12,345 samples` or `? samples` when the entry does not record them.
fn samples(e: &LocalDatasetEntry) -> String {
    e.sample_count()
        .map_or_else(|| "? samples".into(), |n| format!("{n} samples"))
}

/// `1.2 MB` or `? bytes` when the entry does not record them.
fn size(e: &LocalDatasetEntry) -> String {
    match e.shard_sizes() {
        Some(sizes) => human_bytes(sizes.iter().sum()),
        None => "? bytes".into(),
    }
}

/// Bytes in decimal units, as `ls -h --si`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn describe(e: &LocalDatasetEntry) {
    println!("name:       {}", e.name);
    println!("cid:        {}", e.cid());
    println!("schema:     {}", e.schema_ref);
    println!("samples:    {}", samples(e));
    println!("size:       {}", size(e));
    println!("data urls:  {}", e.data_urls.len());
    for url in &e.data_urls {
        println!("  {url}");
    }
    if let Some(m) = &e.metadata {
        println!("metadata:   {m}");
    }
}

/// Prints the items of a listing that could not be read, one line each on stderr; exit code 1
/// when there were any (the rest was listed).
fn report(errors: &[IndexError]) -> ExitCode {
    for e in errors {
        eprintln!("error: {e}");
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn ls(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let listed: Vec<_> = config.existing_index().await?.entries().collect().await;
    let (mut entries, mut errors) = (Vec::new(), Vec::new());
    for item in listed {
        match item {
            Ok(e) => entries.push(e),
            // A failing server ends the listing: that is the command's error.
            Err(e @ IndexError::Corrupt { .. }) => errors.push(e),
            Err(e) => return Err(e.into()),
        }
    }
    entries.sort_by(|a, b| (&a.name, a.cid().to_string()).cmp(&(&b.name, b.cid().to_string())));
    if json {
        let all: Vec<Json> = entries.iter().map(LocalDatasetEntry::to_json).collect();
        println!("{}", Json::Array(all));
    } else {
        for e in &entries {
            println!(
                "{}\t{}\t{}\t{} url(s)\t{}\t{}",
                e.name,
                e.cid(),
                e.schema_ref,
                e.data_urls.len(),
                samples(e),
                size(e)
            );
        }
    }
    Ok(report(&errors))
}

pub async fn get(config: &Config, name_or_cid: &str, json: bool) -> anyhow::Result<()> {
    let entry = find(&config.existing_index().await?, name_or_cid).await?;
    if json {
        println!("{}", entry.to_json());
    } else {
        describe(&entry);
    }
    Ok(())
}

pub async fn schema_list(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let (schemas, errors): (Vec<_>, Vec<_>) = config
        .existing_index()
        .await?
        .list_schemas()
        .await?
        .into_iter()
        .partition(Result::is_ok);
    let schemas: Vec<_> = schemas.into_iter().flatten().collect();
    let errors: Vec<_> = errors.into_iter().filter_map(Result::err).collect();
    if json {
        let all = schemas
            .iter()
            .map(|s| serde_json::from_str(&s.to_json()))
            .collect::<Result<Vec<Json>, _>>()?;
        println!("{}", Json::Array(all));
    } else {
        for s in &schemas {
            println!(
                "{}\t{} field(s)\t{}",
                s.schema_ref,
                s.record.schema.fields.len(),
                s.record.schema.description.as_deref().unwrap_or("")
            );
        }
    }
    Ok(report(&errors))
}

pub async fn schema_show(config: &Config, schema_ref: &str, json: bool) -> anyhow::Result<()> {
    let s = config
        .existing_index()
        .await?
        .get_schema(schema_ref)
        .await?;
    if json {
        println!("{}", s.to_json());
        return Ok(());
    }
    println!("{}", s.schema_ref);
    if let Some(d) = &s.record.schema.description {
        println!("description: {d}");
    }
    println!("created:     {}", s.record.created_at);
    for f in &s.record.schema.fields {
        let ty = serde_json::to_string(&f.field_type)?;
        let optional = if f.optional { " (optional)" } else { "" };
        println!("  {}: {ty}{optional}", f.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{human_bytes, nearest};

    #[test]
    fn near_names_are_suggested_and_far_ones_not() {
        let names = ["newbie-images".to_owned(), "training-v1".to_owned()];
        assert_eq!(nearest("newbie-image", &names), Some("newbie-images"));
        assert_eq!(nearest("training", &names), Some("training-v1"));
        assert_eq!(nearest("zzz", &names), None);
    }

    #[test]
    fn sizes_read_in_decimal_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(13_000), "13.0 kB");
        assert_eq!(human_bytes(1_250_000), "1.2 MB");
        assert_eq!(human_bytes(3_000_000_000), "3.0 GB");
    }
}
