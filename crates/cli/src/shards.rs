//! `inspect` and `cat`: reading shards, with or without a schema from the index.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Read, Write};

use atdata::wds::{ShardOpener, TarReader, expand_urls};
use atdata::{DynamicSample, Schema, WdsSample, msgpack_to_json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use indicatif::ProgressBar;
use serde_json::{Map, Value as Json, json};

use crate::config::Config;
use crate::inputs::{self, Input};
use crate::progress::{self, CountingOpener};
use crate::render;

/// Hands every sample of every shard of `url`, in order, to `each` with the shard's position in
/// the expanded pattern (a pattern may name one shard twice) and URL; `each` returns `false` to
/// stop. Members over `max_member` bytes are refused. It blocks: call it from a blocking thread.
pub fn for_each_sample(
    url: &str,
    opener: &dyn ShardOpener,
    max_member: u64,
    mut each: impl FnMut(usize, &str, WdsSample) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    for (at, shard) in expand_urls(url)?.into_iter().enumerate() {
        let input: Box<dyn Read + Send> = opener.open(&shard)?;
        for sample in TarReader::new(input, shard.clone()).with_max_member_bytes(max_member) {
            if !each(at, &shard, sample?)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The schema to decode by: `--schema`, else the record of the entry the input named.
async fn schema(
    config: &Config,
    schema_ref: Option<&str>,
    input: &Input,
) -> anyhow::Result<Option<(String, Schema)>> {
    let Some(r) = schema_ref.or(input.entry.as_ref().map(|e| e.schema_ref.as_str())) else {
        return Ok(None);
    };
    let index = match &input.index {
        Some(index) => index.clone(),
        None => config.existing_index().await?,
    };
    Ok(Some((r.to_owned(), index.decode_schema(r).await?)))
}

/// The resolved input, its shard URLs, and a progress bar over their bytes.
fn reading(input: &Input, message: &str) -> anyhow::Result<(Vec<String>, ProgressBar)> {
    let shards = expand_urls(&input.url)?;
    let bar = progress::bar(progress::total_size(&shards, input.entry.as_ref()), message);
    Ok((shards, bar))
}

#[derive(Default)]
struct ShardStats {
    samples: usize,
    bytes: usize,
}

pub async fn inspect(
    config: &Config,
    url: &str,
    schema_ref: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let input = inputs::resolve(config, url).await?;
    let schema = schema(config, schema_ref, &input).await?;
    let owned = input.url.clone();
    let max_member = config.max_member_bytes();
    let (urls, bar) = reading(&input, "inspecting")?;
    let opener = CountingOpener::new(bar.clone());
    let read = tokio::task::spawn_blocking(move || {
        let mut shards: Vec<(String, ShardStats)> = urls
            .into_iter()
            .map(|u| (u, ShardStats::default()))
            .collect();
        let mut extensions: BTreeMap<String, usize> = BTreeMap::new();
        let mut keys = Vec::new();
        let mut first: Option<WdsSample> = None;
        for_each_sample(&owned, &opener, max_member, |at, _, sample| {
            let stats = &mut shards[at].1;
            stats.samples += 1;
            stats.bytes += sample.members.iter().map(|(_, d)| d.len()).sum::<usize>();
            for (ext, _) in &sample.members {
                *extensions.entry(ext.clone()).or_default() += 1;
            }
            if keys.len() < 5 {
                keys.push(sample.key.clone());
            }
            first.get_or_insert(sample);
            Ok(true)
        })?;
        anyhow::Ok((shards, extensions, keys, first))
    })
    .await;
    bar.finish_and_clear();
    let (shards, extensions, keys, first) = read??;
    let url = input.url.as_str();

    let samples: usize = shards.iter().map(|(_, s)| s.samples).sum();
    let fields: Vec<Json> = match (&schema, &first) {
        (Some((_, schema)), _) => schema
            .fields
            .iter()
            .map(|f| json!({"name": f.name, "type": f.field_type, "optional": f.optional}))
            .collect(),
        (None, Some(sample)) => match sample
            .members
            .iter()
            .find(|(e, _)| e == "msgpack")
            .map(|(_, d)| msgpack_to_json(d))
        {
            Some(Ok(Json::Object(map))) => map.keys().map(|k| json!({"name": k})).collect(),
            _ => Vec::new(),
        },
        (None, None) => Vec::new(),
    };

    if json {
        let out = json!({
            "url": url,
            "shards": shards.iter().map(|(u, s)| json!({"url": u, "samples": s.samples, "bytes": s.bytes})).collect::<Vec<_>>(),
            "samples": samples,
            "first_keys": keys,
            "extensions": extensions,
            "fields": fields,
        });
        println!("{out}");
        return Ok(());
    }
    println!("{url}");
    println!("shards: {}", shards.len());
    for (u, s) in &shards {
        println!("  {u}: {} samples, {} bytes", s.samples, s.bytes);
    }
    println!("samples: {samples}");
    println!("first keys: {}", keys.join(", "));
    let exts: Vec<String> = extensions
        .iter()
        .map(|(e, n)| format!("{e} ({n})"))
        .collect();
    println!("members: {}", exts.join(", "));
    let source = match &schema {
        Some((r, _)) => format!("from {r}"),
        None => "keys of the first msgpack map; pass --schema for types".into(),
    };
    println!("fields ({source}):");
    for f in &fields {
        match f.get("type") {
            Some(t) => println!(
                "  {}: {}{}",
                f["name"].as_str().unwrap_or_default(),
                t,
                if f["optional"] == true {
                    " (optional)"
                } else {
                    ""
                }
            ),
            None => println!("  {}", f["name"].as_str().unwrap_or_default()),
        }
    }
    Ok(())
}

/// What `cat` prints of each sample.
#[derive(Debug, Clone)]
pub struct CatView {
    /// Only these fields (and `__key__`), when given.
    pub fields: Option<Vec<String>>,
    /// Arrays and bytes in full or summarised.
    pub detail: render::Detail,
}

/// One JSON line for a sample: decoded by `schema`, or its raw msgpack map; other members as
/// base64 under their extensions (their length, summarised).
fn line(sample: &WdsSample, schema: Option<&Schema>, view: &CatView) -> anyhow::Result<Json> {
    let mut out = Map::new();
    out.insert("__key__".into(), Json::from(sample.key.as_str()));
    let wanted = |name: &str| {
        view.fields
            .as_ref()
            .is_none_or(|f| f.iter().any(|n| n == name))
    };
    for (ext, data) in &sample.members {
        match (ext.as_str(), schema) {
            ("msgpack", Some(schema)) => {
                let decoded = DynamicSample::from_bytes(schema, data)
                    .map_err(|e| anyhow::anyhow!("sample {}: {e}", sample.key))?;
                let fields = view.fields.as_deref();
                if let Json::Object(fields) =
                    render::sample(&sample.key, &decoded, fields, view.detail)?
                {
                    out.extend(fields);
                }
            }
            ("msgpack", None) => match msgpack_to_json(data)
                .map_err(|e| anyhow::anyhow!("sample {}: {e}", sample.key))?
            {
                Json::Object(fields) => out.extend(fields.into_iter().filter(|(k, _)| wanted(k))),
                other => {
                    out.insert("msgpack".into(), other);
                }
            },
            (ext, _) if !wanted(ext) => {}
            (ext, _) if view.detail == render::Detail::Summary => {
                out.insert(ext.to_owned(), json!({"bytes": data.len()}));
            }
            (ext, _) => {
                out.insert(ext.to_owned(), Json::from(STANDARD.encode(data)));
            }
        }
    }
    Ok(Json::Object(out))
}

pub async fn cat(
    config: &Config,
    url: &str,
    schema_ref: Option<&str>,
    limit: Option<usize>,
    view: CatView,
) -> anyhow::Result<()> {
    let input = inputs::resolve(config, url).await?;
    let schema = schema(config, schema_ref, &input).await?.map(|(_, s)| s);
    if let (Some(schema), Some(fields)) = (&schema, &view.fields) {
        for name in fields {
            anyhow::ensure!(
                schema.fields.iter().any(|f| &f.name == name),
                "--fields: `{name}` is not a field of {} (fields: {})",
                schema.name,
                schema
                    .fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let url = input.url.clone();
    let max_member = config.max_member_bytes();
    // Printing to a terminal: the bar would fight the lines; shown only when stdout is not one.
    let (_, bar) = reading(&input, "reading")?;
    let bar = if io::stdout().is_terminal() {
        ProgressBar::hidden()
    } else {
        bar
    };
    let opener = CountingOpener::new(bar.clone());
    let done = tokio::task::spawn_blocking(move || {
        let stdout = io::stdout();
        let mut out = io::BufWriter::new(stdout.lock());
        let mut left = limit.unwrap_or(usize::MAX);
        let written = for_each_sample(&url, &opener, max_member, |_, _, sample| {
            if left == 0 {
                return Ok(false);
            }
            left -= 1;
            let json = line(&sample, schema.as_ref(), &view)?;
            writeln!(out, "{json}")?;
            Ok(true)
        })
        .and_then(|()| Ok(out.flush()?));
        match written {
            // A closed pipe (`| head`) is the reader's choice, not an error.
            Err(e)
                if e.downcast_ref::<io::Error>().map(io::Error::kind)
                    == Some(io::ErrorKind::BrokenPipe) =>
            {
                Ok(())
            }
            other => other,
        }
    })
    .await;
    bar.finish_and_clear();
    done?
}
