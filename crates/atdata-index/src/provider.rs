//! The storage behind a `LocalIndex`: one trait, two providers (Redis, SQLite), the same
//! rows in each.

use async_trait::async_trait;

use crate::entry::{EntryRow, LabelRow};
use crate::error::Result;

/// One page of entries and where the next page starts (`None`: that was the last).
pub(crate) type Page = (Vec<EntryRow>, Option<String>);

/// A schema record's text under its name and version.
#[derive(Debug, Clone)]
pub(crate) struct SchemaRow {
    pub name: String,
    pub version: String,
    pub json: String,
}

#[async_trait]
pub(crate) trait Provider: Send + Sync + 'static {
    /// Where the index lives, for messages (`redis://host:port/db`, a file path).
    fn describe(&self) -> String;

    /// Stores an entry and, in the same transaction, the label pointing at it and the schema
    /// record unless one is already stored under its name and version.
    async fn put_entry(&self, entry: EntryRow, label: LabelRow, schema: SchemaRow) -> Result<()>;
    async fn get_entry(&self, cid: &str) -> Result<Option<EntryRow>>;
    /// Any entry called `name` (the fallback when no label names it).
    async fn find_entry_by_name(&self, name: &str) -> Result<Option<EntryRow>>;
    /// The page of entries after `cursor` (`None`: from the start).
    async fn entry_page(&self, cursor: Option<String>) -> Result<Page>;

    async fn put_label(&self, label: LabelRow) -> Result<()>;
    /// The entry the label `name@version` points at, in one round trip.
    async fn get_labelled_entry(&self, name: &str, version: &str) -> Result<Option<EntryRow>>;

    async fn put_schema(&self, schema: SchemaRow) -> Result<()>;
    async fn get_schema(&self, name: &str, version: &str) -> Result<Option<String>>;
    /// The versions stored under `name`.
    async fn schema_versions(&self, name: &str) -> Result<Vec<String>>;
    /// Every stored schema record's text, with the key or row it came from.
    async fn all_schemas(&self) -> Result<Vec<(String, String)>>;
}
