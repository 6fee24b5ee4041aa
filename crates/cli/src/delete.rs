//! `delete`: an entry, its labels, and on request its shards; a dry run unless `--apply`.

use std::process::ExitCode;

use anyhow::Context;
use atdata::DeleteOptions;
use serde_json::json;

use crate::config::Config;
use crate::entries::find;

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// A dataset name (the newest insert under it) or a CID.
    name_or_cid: String,
    /// Also delete its shards and their sibling files from the store (`--bucket`, else the
    /// local folder), except shards another entry references.
    #[arg(long)]
    shards: bool,
    /// Delete; without it, only print what would be deleted.
    #[arg(long)]
    apply: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn delete(config: &Config, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let (index, shown) = if args.shards {
        config.index_with_store().await?
    } else {
        (config.index().await?, String::new())
    };
    let entry = find(&index, &args.name_or_cid).await?;
    let options = DeleteOptions {
        shards: args.shards,
        dry_run: !args.apply,
    };
    let report = index
        .delete(entry.cid().to_string(), options)
        .await
        .with_context(|| format!("deleting {} ({})", entry.name, entry.cid()))?;
    let failed = !report.failed_files.is_empty();
    if args.json {
        let pairs = |items: &[(String, String)]| -> Vec<serde_json::Value> {
            items
                .iter()
                .map(|(url, why)| json!({"url": url, "reason": why}))
                .collect()
        };
        println!(
            "{}",
            json!({
                "applied": args.apply,
                "entry": report.entry.to_json(),
                "labels": report.labels,
                "deleted_files": report.deleted_files,
                "kept_files": pairs(&report.kept_files),
                "failed_files": pairs(&report.failed_files),
            })
        );
    } else {
        let verb = if args.apply {
            "deleted"
        } else {
            "would delete"
        };
        println!(
            "{verb} entry {} ({})",
            report.entry.name,
            report.entry.cid()
        );
        for label in &report.labels {
            println!("{verb} label {label}");
        }
        for file in &report.deleted_files {
            println!("{verb} {file}");
        }
        for (file, why) in &report.kept_files {
            println!("kept {file}: {why}");
        }
        for (file, why) in &report.failed_files {
            println!("FAILED {file}: {why}");
        }
        if !args.apply {
            let shards = if args.shards {
                ""
            } else {
                " (with --shards, the shards too)"
            };
            println!("dry run: --apply deletes{shards}");
        } else if args.shards {
            println!(
                "{} file(s) deleted from {shown}",
                report.deleted_files.len()
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
