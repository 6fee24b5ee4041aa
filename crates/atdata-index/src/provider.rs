//! The storage behind a `LocalIndex`: one trait, two providers (Redis, SQLite), the same
//! rows in each.

use async_trait::async_trait;

use crate::entry::{EntryRow, LabelRow};
use crate::error::Result;

/// One page of entries (a row that cannot be read is an error naming its key, in its place)
/// and where the next page starts (`None`: that was the last).
pub(crate) type Page = (Vec<Result<EntryRow>>, Option<String>);

/// A schema record's text under its name and version.
#[derive(Debug, Clone)]
pub(crate) struct SchemaRow {
    pub name: String,
    pub version: String,
    pub json: String,
}

/// What `put_entry` does when a schema record is already stored under the name and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SchemaWrite {
    /// Keep it (the entry refers to a record that may have been published before).
    KeepExisting,
    /// Write nothing at all and report the version taken (a version being published anew).
    MustBeNew,
}

#[async_trait]
pub(crate) trait Provider: Send + Sync + 'static {
    /// Where the index lives, for messages (`redis://host:port/db`, a file path).
    fn describe(&self) -> String;

    /// Stores an entry and, in the same transaction, the label pointing at it and the schema
    /// record unless one is already stored under its name and version. `false` (and nothing
    /// written) when `mode` is `MustBeNew` and that version is taken.
    async fn put_entry(
        &self,
        entry: EntryRow,
        label: LabelRow,
        schema: SchemaRow,
        mode: SchemaWrite,
    ) -> Result<bool>;
    async fn get_entry(&self, cid: &str) -> Result<Option<EntryRow>>;
    /// Any entry called `name` (the fallback when no label names it).
    async fn find_entry_by_name(&self, name: &str) -> Result<Option<EntryRow>>;
    /// The page of entries after `cursor` (`None`: from the start).
    async fn entry_page(&self, cursor: Option<String>) -> Result<Page>;

    /// Deletes the entry `cid` and, in the same transaction, those of `labels` that still
    /// point at it; whether the entry was there.
    async fn delete_entry(&self, cid: &str, labels: &[LabelRow]) -> Result<bool>;

    async fn put_label(&self, label: LabelRow) -> Result<()>;
    /// Every label pointing at the entry `cid`.
    async fn labels_of(&self, cid: &str) -> Result<Vec<LabelRow>>;
    /// The entry the label `name@version` points at, in one round trip.
    async fn get_labelled_entry(&self, name: &str, version: &str) -> Result<Option<EntryRow>>;

    /// Stores a schema record unless its name and version are taken; whether it was stored.
    async fn insert_schema(&self, schema: SchemaRow) -> Result<bool>;
    /// Stores a schema record, replacing any under its name and version.
    async fn replace_schema(&self, schema: SchemaRow) -> Result<()>;
    async fn get_schema(&self, name: &str, version: &str) -> Result<Option<String>>;
    /// The versions stored under `name`.
    async fn schema_versions(&self, name: &str) -> Result<Vec<String>>;
    /// Every stored schema record's text, with the key or row it came from.
    async fn all_schemas(&self) -> Result<Vec<(String, String)>>;
}
