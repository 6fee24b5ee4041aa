//! `inspect` and `cat`: reading shards, with or without a schema from the index.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use atdata::wds::{ShardOpener, TarReader, expand_urls};
use atdata::{DefaultOpener, DynamicSample, Schema, WdsSample, msgpack_to_json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value as Json, json};

use crate::config::Config;
use crate::render;

/// Hands every sample of every shard of `url`, in order, to `each` with the shard's position in
/// the expanded pattern (a pattern may name one shard twice) and URL; `each` returns `false` to
/// stop. Members over `max_member` bytes are refused. It blocks: call it from a blocking thread.
pub fn for_each_sample(
    url: &str,
    max_member: u64,
    mut each: impl FnMut(usize, &str, WdsSample) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let opener = DefaultOpener::default();
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

async fn schema(config: &Config, schema_ref: Option<&str>) -> anyhow::Result<Option<Schema>> {
    Ok(match schema_ref {
        Some(r) => Some(config.index().await?.decode_schema(r).await?),
        None => None,
    })
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
    let schema = schema(config, schema_ref).await?;
    let owned = url.to_owned();
    let max_member = config.max_member_bytes();
    let (shards, extensions, keys, first) = tokio::task::spawn_blocking(move || {
        let mut shards: Vec<(String, ShardStats)> = Vec::new();
        let mut extensions: BTreeMap<String, usize> = BTreeMap::new();
        let mut keys = Vec::new();
        let mut first: Option<WdsSample> = None;
        for shard in expand_urls(&owned)? {
            shards.push((shard, ShardStats::default()));
        }
        for_each_sample(&owned, max_member, |at, _, sample| {
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
    .await??;

    let samples: usize = shards.iter().map(|(_, s)| s.samples).sum();
    let fields: Vec<Json> = match (&schema, &first) {
        (Some(schema), _) => schema
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
    let source = match schema_ref {
        Some(r) => format!("from {r}"),
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

/// One JSON line for a sample: decoded by `schema`, or its raw msgpack map; other members as
/// base64 under their extensions.
fn line(sample: &WdsSample, schema: Option<&Schema>) -> anyhow::Result<Json> {
    let mut out = Map::new();
    out.insert("__key__".into(), Json::from(sample.key.as_str()));
    for (ext, data) in &sample.members {
        match (ext.as_str(), schema) {
            ("msgpack", Some(schema)) => {
                let decoded = DynamicSample::from_bytes(schema, data)
                    .map_err(|e| anyhow::anyhow!("sample {}: {e}", sample.key))?;
                if let Json::Object(fields) = render::sample(&sample.key, &decoded)? {
                    out.extend(fields);
                }
            }
            ("msgpack", None) => match msgpack_to_json(data)
                .map_err(|e| anyhow::anyhow!("sample {}: {e}", sample.key))?
            {
                Json::Object(fields) => out.extend(fields),
                other => {
                    out.insert("msgpack".into(), other);
                }
            },
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
) -> anyhow::Result<()> {
    let schema = schema(config, schema_ref).await?;
    let url = url.to_owned();
    let max_member = config.max_member_bytes();
    tokio::task::spawn_blocking(move || {
        let stdout = io::stdout();
        let mut out = io::BufWriter::new(stdout.lock());
        let mut left = limit.unwrap_or(usize::MAX);
        let written = for_each_sample(&url, max_member, |_, _, sample| {
            if left == 0 {
                return Ok(false);
            }
            left -= 1;
            let json = line(&sample, schema.as_ref())?;
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
    .await?
}
