//! What the entries reference, and deleting an entry (and, on request, its shards).

use std::collections::HashSet;

use atdata_wds::shard_stem;
use futures::TryStreamExt;

use crate::entry::LocalDatasetEntry;
use crate::error::{Error, Result};
use crate::index::LocalIndex;

/// Every shard the entries of an index reference, by stem (a shard and its sibling files,
/// such as a `.idx` sidecar, share one): what `atdata gc` and [`LocalIndex::delete`] never
/// remove.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let index = atdata_index::LocalIndex::open_sqlite(dir.path().join("index.db")).await?;
/// let references = index.references().await?;
/// assert!(!references.contains("s3://bucket/data--x--000000.tar"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct References {
    stems: HashSet<String>,
}

impl References {
    /// Whether `url` is a referenced shard or one of its sibling files (`a.tar`, `a.idx`).
    pub fn contains(&self, url: &str) -> bool {
        self.stems.contains(shard_stem(&normalize(url)))
    }

    fn add(&mut self, entry: &LocalDatasetEntry) -> Result<()> {
        for url in shard_urls(entry)? {
            self.stems.insert(shard_stem(&normalize(&url)).to_owned());
        }
        Ok(())
    }
}

/// An entry's shard URLs, brace patterns expanded.
fn shard_urls(entry: &LocalDatasetEntry) -> Result<Vec<String>> {
    let mut urls = Vec::new();
    for url in &entry.data_urls {
        let expanded = atdata_wds::expand_urls(url).map_err(|e| {
            Error::Invalid(format!(
                "entry {} ({}): data url {url}: {e}",
                entry.name,
                entry.cid()
            ))
        })?;
        urls.extend(expanded);
    }
    Ok(urls)
}

/// A local path as its canonical absolute path (`file://` dropped); other URLs as they are.
fn normalize(url: &str) -> String {
    let url = url.strip_prefix("file://").unwrap_or(url);
    if url.contains("://") {
        return url.to_owned();
    }
    std::fs::canonicalize(url)
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .unwrap_or_else(|| url.to_owned())
}

/// What [`LocalIndex::delete`] does: remove the entry only (the default), or its shards too;
/// for real, or as a dry run that only reports.
///
/// ```
/// let plan = atdata_index::DeleteOptions { shards: true, dry_run: true };
/// assert_ne!(plan, atdata_index::DeleteOptions::default());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Also delete the entry's shards and their sibling files (same stem: `a.tar`, `a.idx`)
    /// through the index's data store, except shards another entry also references and
    /// URLs outside the store.
    pub shards: bool,
    /// Delete nothing; report what would be deleted.
    pub dry_run: bool,
}

/// What [`LocalIndex::delete`] deleted (or, in a dry run, would delete).
///
/// ```
/// let entry = atdata_index::LocalDatasetEntry::new("n", "atdata://local/schema/T@1.0.0", vec!["a.tar".into()], None).unwrap();
/// let report = atdata_index::Deletion { entry, labels: vec!["n@".into()], deleted_files: vec![], kept_files: vec![], failed_files: vec![] };
/// assert!(report.failed_files.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    /// The entry.
    pub entry: LocalDatasetEntry,
    /// The labels that pointed at it, as `name@version` (`name@` for the unversioned label).
    pub labels: Vec<String>,
    /// Files deleted: shards and their sibling files.
    pub deleted_files: Vec<String>,
    /// Shards kept, each with the reason.
    pub kept_files: Vec<(String, String)>,
    /// Files that could not be deleted, each with the error (the entry is gone: `atdata gc`
    /// finds them).
    pub failed_files: Vec<(String, String)>,
}

impl LocalIndex {
    /// What every entry references (see [`References`]). An entry that cannot be read is the
    /// error: nothing can then be proved unreferenced.
    pub async fn references(&self) -> Result<References> {
        self.references_except("").await
    }

    async fn references_except(&self, cid: &str) -> Result<References> {
        let mut references = References::default();
        let mut entries = std::pin::pin!(self.entries());
        while let Some(entry) = entries.try_next().await? {
            if entry.cid().to_string() != cid {
                references.add(&entry)?;
            }
        }
        Ok(references)
    }

    /// Deletes the entry `cid` and every label pointing at it, in one transaction; with
    /// `options.shards`, then its shards and their sibling files through the index's data
    /// store (never a shard another entry references, nor a URL outside the store). The entry
    /// goes first, so no entry ever points at a deleted shard; a file that fails to delete is
    /// reported in [`Deletion::failed_files`] and left for `atdata gc`. After it, the name
    /// finds another entry of that name, if there is one.
    ///
    /// ```
    /// # use atdata_derive::packable;
    /// # #[packable(crate = "atdata_codec")]
    /// # struct Row { id: i64 }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use atdata_index::{DeleteOptions, LocalIndex};
    /// let dir = tempfile::tempdir()?;
    /// let index = LocalIndex::open_sqlite(dir.path().join("index.db")).await?;
    /// let ds = atdata_wds::Dataset::<Row>::new("rows.tar")?;
    /// let entry = index.add_entry(&ds, "rows", None, None).await?;
    /// let cid = entry.cid().to_string();
    ///
    /// let report = index.delete(&cid, DeleteOptions::default()).await?;
    /// assert_eq!(report.labels, ["rows@"]);
    /// assert!(index.get_entry(&cid).await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, cid: impl AsRef<str>, options: DeleteOptions) -> Result<Deletion> {
        let entry = self.get_entry(cid.as_ref()).await?;
        let cid = entry.cid().to_string();
        let store = self.data_store();
        let store = store.as_ref();
        let base = store.map(|s| s.url(""));
        if options.shards && store.is_none() {
            return Err(Error::Invalid(
                "this index has no data store to delete shards through".into(),
            ));
        }
        let labels = self.provider().labels_of(&cid).await?;
        let mut report = Deletion {
            labels: labels
                .iter()
                .map(|l| format!("{}@{}", l.name, l.version))
                .collect(),
            deleted_files: Vec::new(),
            kept_files: Vec::new(),
            failed_files: Vec::new(),
            entry,
        };
        // Planned before the entry goes, so that a failure here deletes nothing.
        let mut doomed = Vec::new();
        if let (true, Some(store), Some(base)) = (options.shards, store, &base) {
            let others = self.references_except(&cid).await?;
            for url in shard_urls(&report.entry)? {
                if others.contains(&url) {
                    report
                        .kept_files
                        .push((url, "another entry references it".into()));
                    continue;
                }
                let Some(key) = url.strip_prefix(base.as_str()) else {
                    report
                        .kept_files
                        .push((url, format!("not in the index's data store ({base})")));
                    continue;
                };
                let dir = key.rsplit_once('/').map_or("", |(dir, _)| dir);
                let stem = shard_stem(&url).to_owned();
                let siblings = match store.list_items(dir).await {
                    Ok(items) => items
                        .into_iter()
                        .filter(|i| !i.is_upload() && shard_stem(&i.url) == stem)
                        .map(|i| i.url)
                        .collect(),
                    Err(atdata_store::Error::Unsupported(_)) => vec![url.clone()],
                    Err(e) => return Err(e.into()),
                };
                for file in siblings {
                    if !doomed.contains(&file) {
                        doomed.push(file);
                    }
                }
            }
        }
        if options.dry_run {
            report.deleted_files = doomed;
            return Ok(report);
        }
        if !self.provider().delete_entry(&cid, &labels).await? {
            return Err(Error::NotFound {
                what: "entry",
                key: cid,
            });
        }
        if let Some(store) = store {
            for file in doomed {
                match store.delete(&file).await {
                    Ok(()) => report.deleted_files.push(file),
                    Err(e) => report.failed_files.push((file, e.to_string())),
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_normalize_to_paths() {
        assert_eq!(normalize("file:///nonexistent/a.tar"), "/nonexistent/a.tar");
    }
}
