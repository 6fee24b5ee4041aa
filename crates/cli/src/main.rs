//! `atdata`: look inside shards and indexes, insert datasets, verify them.
//!
//! Exit codes: 0 on success, 1 on an error (one line on stderr), 2 on a usage error, 130 after
//! SIGINT and 143 after SIGTERM (the work in flight is cancelled and cleaned up first).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cache;
mod config;
mod delete;
mod entries;
mod gc;
mod inputs;
mod insert;
mod progress;
mod render;
mod shards;
mod sidecar;
mod verify;

use crate::config::Config;

/// Typed ML datasets in WebDataset shards, indexed in Redis or SQLite (Python atdata's layout).
///
/// Configuration comes from flags, then the environment, then a `.env` file in the current
/// directory: `ATDATA_INDEX`, `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_BUCKET`; `ATDATA_CACHE_DIR` and `ATDATA_CACHE_LIMIT` (a local cache of
/// remote shards), `ATDATA_HTTP_TOKEN` (a bearer token for `http(s)://` shards).
#[derive(Debug, Parser)]
#[command(name = "atdata", version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,

    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Shards, sample counts, keys, member extensions and sizes of a dataset.
    Inspect {
        /// A shard file, URL or brace pattern (`data-{000000..000009}.tar`, `s3://...`), a
        /// directory or glob of shard files, or an indexed dataset's name or CID.
        url: String,
        /// A schema in the index (`Name`, `Name@version` or a full reference), to list the
        /// sample fields.
        #[arg(long)]
        schema: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Samples as JSON, one object per line: decoded by `--schema` (by default, for a dataset
    /// name, its entry's schema), else the raw msgpack map.
    Cat {
        /// A shard file, URL or brace pattern, a directory or glob of shard files, or an
        /// indexed dataset's name or CID.
        url: String,
        /// A schema in the index (`Name`, `Name@version` or a full reference) to decode the
        /// samples with.
        #[arg(long)]
        schema: Option<String>,
        /// Stop after this many samples.
        #[arg(long)]
        limit: Option<usize>,
        /// Only these fields (comma-separated), besides `__key__`.
        #[arg(long, value_delimiter = ',')]
        fields: Option<Vec<String>>,
        /// Arrays as dtype, shape and their first few values, bytes as their length (the
        /// default prints every element).
        #[arg(long)]
        summary: bool,
    },
    /// The entries of the index.
    Ls {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One entry, by name (the newest insert under it) or by CID.
    Get {
        /// A dataset name or a CID.
        name_or_cid: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Schema records.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Writes a dataset's shards to the store (`--bucket`, else a local folder) and indexes it.
    Insert(insert::InsertArgs),
    /// Lists (and with `--apply` removes) what interrupted inserts left in the store:
    /// unfinished uploads and shard objects older than `--older-than` that no entry references.
    Gc(gc::GcArgs),
    /// Removes an entry and every label pointing at it (and with `--shards` its shards);
    /// a dry run unless `--apply`.
    Delete(delete::DeleteArgs),
    /// Writes the sidecar index (`<stem>.idx`, DALI's format) beside each shard: built from
    /// the shard's headers, for shards written without one (by Python, by older versions).
    /// Local shards get a file, `s3://` shards a sibling object; compressed shards are skipped.
    Sidecar {
        /// Shard files, URLs or brace patterns, directories or globs of shard files, or
        /// indexed datasets' names or CIDs.
        #[arg(required = true)]
        urls: Vec<String>,
    },
    /// The local cache of remote shards: `ls` its copies, `clear` it.
    Cache(cache::CacheArgs),
    /// Re-hashes every shard of an entry against the checksums stored with it.
    Verify {
        /// A dataset name or a CID.
        name_or_cid: String,
        /// Print a JSON array of the results.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Every schema record, by name and version.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One schema record.
    Show {
        /// `Name` (its highest version), `Name@1.0.0`, or a full reference:
        /// `atdata://local/schema/Name@1.0.0`, `atdata://local/sampleSchema/...` or
        /// `local://schemas/module.Name@1.0.0`.
        schema_ref: String,
        /// Print the record as JSON text (with `$ref`), as Python's `get_schema` returns it.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // A `.env` in the current directory fills what the environment lacks; none is fine, a
    // malformed one is an error (its lines are never shown: they may hold secrets).
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(dotenvy::Error::LineParse(_, at)) => {
            return fail(&anyhow::anyhow!(
                ".env in the current directory: cannot parse the line at byte {at}"
            ));
        }
        Err(e) => {
            let why = match e {
                dotenvy::Error::Io(io) => io.to_string(),
                _ => "cannot be read".into(),
            };
            return fail(&anyhow::anyhow!(".env in the current directory: {why}"));
        }
    }
    let cli = Cli::parse(); // usage errors exit with 2
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Prints `e` and its causes on one line (a cause already in its parent's text is left out)
/// and returns the error exit code.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(e));
    ExitCode::FAILURE
}

/// The causes of `e` on one line: each with a server's XML body cut to its reason and its
/// whitespace collapsed, a cause already in its parent's text left out, a part repeated
/// right after itself (`url: url: ...`) once, and a line over `ERROR_LINE` characters cut in
/// its middle (its start says what failed, its end why).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain().map(|c| short(&c.to_string())) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    let mut parts: Vec<&str> = line.split(": ").collect();
    parts.dedup();
    let line = parts.join(": ");
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= ERROR_LINE {
        return line;
    }
    let head: String = chars[..ERROR_LINE / 2].iter().collect();
    let tail: String = chars[chars.len() - ERROR_LINE / 2..].iter().collect();
    format!("{head} ... {tail}")
}

/// Longest an error line grows, in characters.
const ERROR_LINE: usize = 400;

/// One cause: an XML error body a server sent cut to its `Code` and `Message`, runs of
/// whitespace (newlines included) as one space.
fn short(cause: &str) -> String {
    let text = match cause.find("<?xml").or_else(|| cause.find("<Error>")) {
        Some(at) => {
            let body = &cause[at..];
            let tag = |name: &str| {
                let open = format!("<{name}>");
                let start = body.find(&open)? + open.len();
                let end = body[start..].find(&format!("</{name}>"))? + start;
                Some(body[start..end].to_owned())
            };
            let reason = [tag("Code"), tag("Message")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            format!("{}{reason}", &cause[..at])
        }
        None => cause.to_owned(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs the command until it ends or a signal cancels it, then waits for the cleanup of
/// everything it started (an interrupted insert's uploads and shards); a second signal
/// exits at once.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config;
    let outcome = tokio::select! {
        done = execute(&config, cli.command) => done,
        code = interrupted() => {
            eprintln!("interrupted: cancelling and cleaning up (again to exit at once)");
            Ok(code)
        }
    };
    let cleaned = tokio::select! {
        cleaned = config.shutdown() => cleaned,
        code = interrupted() => return Ok(code),
    };
    match (outcome, cleaned) {
        (Ok(code), Ok(())) => Ok(code),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.context("cleaning up")),
    }
}

/// Waits for SIGINT (exit code 130) or SIGTERM (143).
async fn interrupted() -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => ExitCode::from(130),
        _ = term.recv() => ExitCode::from(143),
    }
}

async fn execute(config: &Config, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Inspect { url, schema, json } => {
            shards::inspect(config, &url, schema.as_deref(), json).await?
        }
        Command::Cat {
            url,
            schema,
            limit,
            fields,
            summary,
        } => {
            let view = shards::CatView {
                fields,
                detail: if summary {
                    render::Detail::Summary
                } else {
                    render::Detail::Full
                },
            };
            shards::cat(config, &url, schema.as_deref(), limit, view).await?
        }
        Command::Ls { json } => return entries::ls(config, json).await,
        Command::Get { name_or_cid, json } => entries::get(config, &name_or_cid, json).await?,
        Command::Schema { command } => match command {
            SchemaCommand::List { json } => return entries::schema_list(config, json).await,
            SchemaCommand::Show { schema_ref, json } => {
                entries::schema_show(config, &schema_ref, json).await?
            }
        },
        Command::Insert(args) => insert::insert(config, args).await?,
        Command::Gc(args) => return gc::gc(config, args).await,
        Command::Delete(args) => return delete::delete(config, args).await,
        Command::Sidecar { urls } => sidecar::sidecar(config, &urls).await?,
        Command::Cache(args) => return cache::cache(args),
        Command::Verify { name_or_cid, json } => {
            return verify::verify(config, &name_or_cid, json).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{one_line, short};

    #[test]
    fn a_server_body_is_cut_to_its_reason_on_one_line() {
        let cause = "Error performing PUT http://h/b/k in 1ms - Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied.</Message><Resource>/b/k</Resource></Error>";
        assert_eq!(
            short(cause),
            "Error performing PUT http://h/b/k in 1ms - Server returned non-2xx status code: 403 Forbidden: AccessDenied: Access Denied."
        );
        assert_eq!(short("a\n  b"), "a b");
        let long = anyhow::anyhow!("{}: why", "x".repeat(1000)).context("u: u");
        let line = one_line(&long);
        assert!(
            line.len() < 410 && line.starts_with("u: xxx") && line.ends_with("x: why"),
            "{line}"
        );
    }
}
