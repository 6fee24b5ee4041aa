//! `verify`: re-hash every shard of an entry against its stored checksums.

use std::process::ExitCode;

use atdata::wds::ShardOpener;
use serde_json::{Value as Json, json};

use crate::config::Config;
use crate::entries::find;
use crate::progress::{self, CountingOpener};

/// The SHA-256 (hex) of everything `opener` reads from `url`.
fn sha256(opener: &CountingOpener, url: &str) -> anyhow::Result<String> {
    Ok(atdata::store::sha256_hex(opener.open(url)?)?)
}

pub async fn verify(config: &Config, name_or_cid: &str, json: bool) -> anyhow::Result<ExitCode> {
    let entry = find(&config.existing_index().await?, name_or_cid).await?;
    let bar = progress::bar(
        progress::total_size(&entry.data_urls, Some(&entry)),
        format!("verifying {}", entry.name),
    );
    let opener = CountingOpener::new(bar.clone());
    let checksums = entry
        .metadata
        .as_ref()
        .and_then(|m| m.get("checksums"))
        .cloned()
        .unwrap_or(Json::Null);
    let urls = entry.data_urls.clone();
    let results: Vec<Json> = tokio::task::spawn_blocking(move || {
        urls.iter()
            .map(|url| match checksums.get(url).and_then(Json::as_str) {
                None => json!({"url": url, "status": "skipped", "reason": "no checksum stored"}),
                Some(expected) => match sha256(&opener, url) {
                    Ok(actual) if actual == expected => json!({"url": url, "status": "ok"}),
                    Ok(actual) => json!({"url": url, "status": "mismatch",
                        "expected": expected, "actual": actual}),
                    Err(e) => json!({"url": url, "status": "error", "reason": format!("{e:#}")}),
                },
            })
            .collect()
    })
    .await?;
    bar.finish_and_clear();

    let bad = results
        .iter()
        .filter(|r| matches!(r["status"].as_str(), Some("mismatch" | "error")))
        .count();
    if json {
        println!("{}", Json::Array(results.clone()));
    } else {
        for r in &results {
            let detail = match r["status"].as_str() {
                Some("mismatch") => format!(" (expected {}, got {})", r["expected"], r["actual"]),
                Some("skipped" | "error") => format!(" ({})", r["reason"].as_str().unwrap_or("")),
                _ => String::new(),
            };
            println!(
                "{}\t{}{detail}",
                r["status"].as_str().unwrap_or("?"),
                r["url"].as_str().unwrap_or("?")
            );
        }
    }
    if bad > 0 {
        eprintln!(
            "error: {bad} of {} shard(s) failed verification",
            results.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
