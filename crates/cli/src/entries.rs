//! `ls`, `get` and `schema`: reading the index.

use std::process::ExitCode;

use atdata::index::Error as IndexError;
use atdata::{Cid, LocalDatasetEntry, LocalIndex};
use futures::StreamExt;
use serde_json::Value as Json;

use crate::config::Config;

/// The entry `name_or_cid` names: by CID when it parses as one (and is there), else by name.
pub async fn find(index: &LocalIndex, name_or_cid: &str) -> anyhow::Result<LocalDatasetEntry> {
    if name_or_cid.parse::<Cid>().is_ok() {
        match index.get_entry(name_or_cid).await {
            Err(IndexError::NotFound { .. }) => {}
            found => return Ok(found?),
        }
    }
    Ok(index.get_entry_by_name(name_or_cid).await?)
}

fn describe(e: &LocalDatasetEntry) {
    println!("name:       {}", e.name);
    println!("cid:        {}", e.cid());
    println!("schema:     {}", e.schema_ref);
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
    let listed: Vec<_> = config.index().await?.entries().collect().await;
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
                "{}\t{}\t{}\t{} url(s)",
                e.name,
                e.cid(),
                e.schema_ref,
                e.data_urls.len()
            );
        }
    }
    Ok(report(&errors))
}

pub async fn get(config: &Config, name_or_cid: &str, json: bool) -> anyhow::Result<()> {
    let entry = find(&config.index().await?, name_or_cid).await?;
    if json {
        println!("{}", entry.to_json());
    } else {
        describe(&entry);
    }
    Ok(())
}

pub async fn schema_list(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let (schemas, errors): (Vec<_>, Vec<_>) = config
        .index()
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
    let s = config.index().await?.get_schema(schema_ref).await?;
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
