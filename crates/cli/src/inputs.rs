//! What a dataset argument names: a shard URL or pattern, a directory or glob of shard files,
//! or the name (or CID) of an indexed dataset.
//!
//! The rules, in order: a string with a scheme (`s3://...`, `file://...`) or naming an existing
//! file is a URL; an existing directory is its shard files; a string with a glob character
//! (`*`, `?`, `[`) is the shard files it matches; a string with a brace (`{`) is a brace
//! pattern; anything else is looked up in the index as a name or CID. Shard files are those
//! ending in `.tar`, `.tar.gz`, `.tgz` or `.tar.zst`, sorted by path.

use std::path::{Path, PathBuf};

use anyhow::Context;
use atdata::{LocalDatasetEntry, LocalIndex};

use crate::config::Config;
use crate::entries::find;

/// The suffixes of shard files a directory or a glob expands to.
const SHARD_SUFFIXES: [&str; 4] = [".tar", ".tar.gz", ".tgz", ".tar.zst"];

/// A dataset argument, resolved.
pub struct Input {
    /// A URL or brace pattern the readers take.
    pub url: String,
    /// The entry, when the argument was a dataset name or CID.
    pub entry: Option<LocalDatasetEntry>,
    /// The index the entry was found in.
    pub index: Option<LocalIndex>,
}

impl Input {
    fn url(url: String) -> Input {
        Input {
            url,
            entry: None,
            index: None,
        }
    }
}

fn is_shard(path: &Path) -> bool {
    let name = path.to_string_lossy();
    SHARD_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// `{a,b,c}` of `paths`, each escaped for brace expansion (one path stays itself).
fn brace_list(paths: &[PathBuf]) -> anyhow::Result<String> {
    let texts = paths
        .iter()
        .map(|p| {
            p.to_str()
                .map(|t| {
                    t.replace('\\', "\\\\")
                        .replace('{', "\\{")
                        .replace('}', "\\}")
                        .replace(',', "\\,")
                })
                .with_context(|| format!("{}: not a UTF-8 path", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(match texts.as_slice() {
        [one] => one.clone(),
        _ => format!("{{{}}}", texts.join(",")),
    })
}

/// The shard files of `dir`, sorted.
fn shard_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && is_shard(&path) {
            files.push(path);
        }
    }
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "{}: no shard files in this directory (looked for {})",
        dir.display(),
        SHARD_SUFFIXES.join(", ")
    );
    Ok(files)
}

/// The shard files `pattern` matches, sorted.
fn glob_files(pattern: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for found in glob::glob(pattern).with_context(|| format!("`{pattern}`: not a glob pattern"))? {
        let path = found?;
        if path.is_file() && is_shard(&path) {
            files.push(path);
        }
    }
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "`{pattern}` matches no shard files ({})",
        SHARD_SUFFIXES.join(", ")
    );
    Ok(files)
}

/// The URL a dataset argument names by itself (the module's rules 1 to 4), or `None` when it
/// is to be looked up as a dataset name.
fn shard_url(text: &str) -> Option<anyhow::Result<String>> {
    let path = Path::new(text);
    Some(if text.contains("://") || path.is_file() {
        Ok(text.to_owned())
    } else if path.is_dir() {
        shard_files(path).and_then(|files| brace_list(&files))
    } else if path.exists() {
        Err(anyhow::anyhow!(
            "`{text}` is not a file, a directory, a pattern or a URL"
        ))
    } else if text.contains(['*', '?', '[']) {
        glob_files(text).and_then(|files| brace_list(&files))
    } else if text.contains('{') {
        Ok(text.to_owned())
    } else {
        return None;
    })
}

/// The dataset `text` names in `index`.
async fn by_name(index: LocalIndex, text: &str) -> anyhow::Result<Input> {
    let entry = find(&index, text).await.with_context(|| {
        format!("`{text}` is not a file, a directory, a pattern or a URL, nor a dataset name")
    })?;
    Ok(Input {
        url: entry.shards_url(),
        entry: Some(entry),
        index: Some(index),
    })
}

/// Resolves a dataset argument (see the module's rules), looking names up in `index`.
pub async fn resolve_in(index: &LocalIndex, text: &str) -> anyhow::Result<Input> {
    match shard_url(text) {
        Some(url) => Ok(Input::url(url?)),
        None => by_name(index.clone(), text).await,
    }
}

/// Resolves a dataset argument against the configured index (opened read-only, and only when
/// the argument is a name).
pub async fn resolve(config: &Config, text: &str) -> anyhow::Result<Input> {
    match shard_url(text) {
        Some(url) => Ok(Input::url(url?)),
        None => by_name(config.existing_index().await?, text).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_escaped_for_brace_expansion() {
        let paths = [PathBuf::from("/d/a,b.tar"), PathBuf::from("/d/{c}.tar")];
        let url = brace_list(&paths).unwrap();
        assert_eq!(
            atdata::wds::expand_urls(&url).unwrap(),
            ["/d/a,b.tar", "/d/{c}.tar"]
        );
    }

    #[test]
    fn only_tar_files_are_shards() {
        for name in ["a.tar", "a.tar.gz", "a.tgz", "a.tar.zst"] {
            assert!(is_shard(Path::new(name)), "{name}");
        }
        for name in ["a.idx", "a.tar.bak", "a.zip", "a"] {
            assert!(!is_shard(Path::new(name)), "{name}");
        }
    }
}
