//! `gc`: what interrupted inserts leave in a store (a SIGKILL, a power cut), found and removed.
//!
//! A candidate is an unfinished upload, or a stored object that no entry of the index
//! references, older than `--older-than` (so a concurrent insert is never touched). An object
//! is referenced when an entry's `data_urls`, brace-expanded, name it (with or without a
//! `file://` scheme, as Python stores local paths) or a file of the same stem beside it (its
//! sidecars). Dry run unless `--apply`.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use atdata::store::StoredItem;
use serde_json::{Value as Json, json};

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Only look under this object prefix (folder) of the store.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Only what is older than this (`90s`, `30m`, `24h`, `7d`).
    #[arg(long, default_value = "24h", value_parser = parse_age)]
    older_than: Duration,
    /// Remove what was found (abort the uploads, delete the objects); without it, only list.
    #[arg(long)]
    apply: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `90s`, `30m`, `24h` or `7d`.
fn parse_age(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}`: give a unit (s, m, h or d), as in 24h"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a whole number before the unit"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit is one of s, m, h, d")),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

fn modified(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub async fn gc(config: &Config, args: GcArgs) -> anyhow::Result<ExitCode> {
    let (index, store, shown) = config.index_and_store().await?;
    // Everything any entry references; one unreadable entry stops gc (it cannot know what
    // that entry references).
    let referenced = index
        .references()
        .await
        .context("reading every entry (gc removes nothing it cannot prove unreferenced)")?;
    let items = store
        .list_items(&args.prefix)
        .await
        .with_context(|| format!("listing {shown}"))?;
    let cutoff = SystemTime::now()
        .checked_sub(args.older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let (mut kept_referenced, mut kept_recent) = (0usize, 0usize);
    let mut found: Vec<&StoredItem> = Vec::new();
    for item in &items {
        if !item.is_upload() && referenced.contains(&item.url) {
            kept_referenced += 1;
        } else if item.modified > cutoff {
            kept_recent += 1;
        } else {
            found.push(item);
        }
    }

    let mut failures = 0;
    let mut rows = Vec::with_capacity(found.len());
    for item in found {
        let kind = if item.is_upload() { "upload" } else { "object" };
        let outcome = if args.apply {
            Some(store.remove_item(item).await)
        } else {
            None
        };
        let error = match &outcome {
            Some(Err(e)) => {
                failures += 1;
                Some(e.to_string())
            }
            _ => None,
        };
        let removed = matches!(outcome, Some(Ok(())));
        if !args.json {
            let action = match (&outcome, kind) {
                (None, "upload") => "would abort",
                (None, _) => "would delete",
                (Some(Ok(())), "upload") => "aborted",
                (Some(Ok(())), _) => "deleted",
                (Some(Err(_)), _) => "FAILED",
            };
            let size = item.size.map(|s| format!(" {s} bytes")).unwrap_or_default();
            let why = error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            println!(
                "{action}\t{kind}\t{}\t{}{size}{why}",
                item.url,
                modified(item.modified)
            );
        }
        rows.push(json!({
            "url": item.url,
            "kind": kind,
            "size": item.size,
            "modified": modified(item.modified),
            "removed": removed,
            "error": error,
        }));
    }
    if args.json {
        println!(
            "{}",
            json!({
                "store": shown,
                "applied": args.apply,
                "found": Json::Array(rows),
                "kept_referenced": kept_referenced,
                "kept_recent": kept_recent,
            })
        );
    } else {
        let verb = if args.apply {
            "removed"
        } else {
            "found (dry run: --apply removes them)"
        };
        println!(
            "{} item(s) {verb} in {shown}; kept {kept_referenced} referenced and {kept_recent} newer than {:?}",
            rows.len() - failures,
            args.older_than
        );
    }
    Ok(if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_one_unit() {
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_age("0s"), Ok(Duration::ZERO));
        assert!(parse_age("24").is_err());
        assert!(parse_age("h").is_err());
        assert!(parse_age("3w").is_err());
        assert!(parse_age("99999999999999999999d").is_err());
    }
}
