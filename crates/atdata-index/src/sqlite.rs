//! The SQLite provider, the embedded default: Python atdata's tables, in WAL mode, so either
//! language can open the same file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::entry::{EntryRow, LabelRow};
use crate::error::{Error, Result};
use crate::provider::{Page, Provider, SchemaRow, SchemaWrite};

/// Python atdata's DDL, verbatim (`golden/sqlite_dump.json`), so the files are alike.
const DDL: &str = "CREATE TABLE IF NOT EXISTS dataset_entries (
    cid         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    schema_ref  TEXT NOT NULL,
    data_urls   BLOB NOT NULL,
    metadata    BLOB,
    legacy_uuid TEXT,
    created_at  TEXT DEFAULT (datetime('now'))
);

CREATE INDEX IF NOT EXISTS idx_entries_name
    ON dataset_entries(name);

CREATE TABLE IF NOT EXISTS schemas (
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    created_at  TEXT DEFAULT (datetime('now')),
    PRIMARY KEY (name, version)
);

CREATE TABLE IF NOT EXISTS lenses (
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    lens_json   TEXT NOT NULL,
    created_at  TEXT DEFAULT (datetime('now')),
    PRIMARY KEY (name, version)
);

CREATE TABLE IF NOT EXISTS labels (
    name        TEXT NOT NULL,
    cid         TEXT NOT NULL,
    version     TEXT NOT NULL DEFAULT '',
    description TEXT,
    created_at  TEXT DEFAULT (datetime('now')),
    PRIMARY KEY (name, version)
);

CREATE INDEX IF NOT EXISTS idx_labels_cid
    ON labels(cid);
";

/// The entry columns, in `EntryRow` order, as every entry query selects them.
macro_rules! select_entries {
    ($rest:literal) => {
        concat!(
            "SELECT e.cid, e.name, e.schema_ref, e.data_urls, e.metadata, e.legacy_uuid ",
            "FROM dataset_entries e ",
            $rest
        )
    };
}
const PAGE: i64 = 1000;

pub(crate) struct SqliteProvider {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EntryRow> {
    Ok(EntryRow {
        cid: r.get(0)?,
        name: r.get(1)?,
        schema_ref: r.get(2)?,
        data_urls: r.get(3)?,
        metadata: r.get(4)?,
        legacy_uuid: r.get(5)?,
    })
}

fn insert_label(c: &Connection, l: &LabelRow) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT OR REPLACE INTO labels (name, cid, version, description) VALUES (?1, ?2, ?3, ?4)",
        params![l.name, l.cid, l.version, l.description],
    )
}

/// Stores `schema` unless its name and version are taken; whether it did.
fn insert_schema(c: &Connection, schema: &SchemaRow) -> rusqlite::Result<bool> {
    c.execute(
        "INSERT INTO schemas (name, version, schema_json) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name, version) DO NOTHING",
        params![schema.name, schema.version, schema.json],
    )
    .map(|changed| changed == 1)
}

/// Refuses a path SQLite would take for a private temporary or in-memory database, where an
/// index would vanish with the connection: the empty path (an unset variable in
/// `sqlite:$VAR`), `:memory:`, and `file:` URIs.
fn check_path(path: &Path) -> Result<()> {
    let text = path.to_string_lossy();
    let reason = if text.trim().is_empty() {
        "an empty path opens a temporary database that is deleted on close"
    } else if text == ":memory:" {
        "`:memory:` is a database that vanishes when the connection closes"
    } else if text.starts_with("file:") {
        "a `file:` URI may name an in-memory or temporary database; give a plain file path"
    } else {
        return Ok(());
    };
    Err(Error::Invalid(format!(
        "sqlite index path `{text}`: {reason}, so entries written to it would be lost and their shards orphaned"
    )))
}

impl SqliteProvider {
    /// Opens (and, unless `read_only`, creates) the index file at `path`. A read-only index
    /// must exist; nothing is written to it.
    pub(crate) async fn open(path: &Path, read_only: bool) -> Result<SqliteProvider> {
        check_path(path)?;
        if read_only && !path.is_file() {
            return Err(Error::NotFound {
                what: "index file",
                key: path.display().to_string(),
            });
        }
        let path = path.to_owned();
        let shown = path.display().to_string();
        let opened =
            tokio::task::spawn_blocking(move || -> rusqlite::Result<(Connection, PathBuf)> {
                if read_only {
                    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let conn = Connection::open_with_flags(&path, flags)?;
                    conn.busy_timeout(Duration::from_secs(10))?;
                    return Ok((conn, path));
                }
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    // A missing parent is created, as Python does for ~/.atdata; a failure shows up
                    // as SQLite's "unable to open" below.
                    let _ = std::fs::create_dir_all(dir);
                }
                let conn = Connection::open(&path)?;
                // Another process (a Python user, another Rust one) may hold the write lock.
                conn.busy_timeout(Duration::from_secs(10))?;
                let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
                conn.execute_batch(DDL)?;
                Ok((conn, path))
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        let (conn, path) = opened.map_err(|source| Error::Sqlite {
            path: shown,
            source,
        })?;
        Ok(SqliteProvider {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The entry the query `sql` (cached per connection) finds with `params`, if any.
    async fn one_entry<const N: usize>(
        &self,
        sql: &'static str,
        params: [&str; N],
    ) -> Result<Option<EntryRow>> {
        let params = params.map(str::to_owned);
        self.run(move |c| {
            c.prepare_cached(sql)?
                .query_row(rusqlite::params_from_iter(params), entry_row)
                .optional()
        })
        .await
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        done.map_err(|source| Error::Sqlite {
            path: self.path.display().to_string(),
            source,
        })
    }
}

#[async_trait]
impl Provider for SqliteProvider {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    async fn put_entry(
        &self,
        e: EntryRow,
        label: LabelRow,
        schema: SchemaRow,
        mode: SchemaWrite,
    ) -> Result<bool> {
        self.run(move |c| {
            // IMMEDIATE: the write lock is taken (waiting up to the busy timeout) before the
            // first read, so a reader never has to upgrade to a writer, which SQLite refuses at
            // once ("database is locked") when another process wrote in between.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !insert_schema(&tx, &schema)? && mode == SchemaWrite::MustBeNew {
                return Ok(false); // dropping `tx` rolls back
            }
            tx.execute(
                "INSERT OR REPLACE INTO dataset_entries \
                 (cid, name, schema_ref, data_urls, metadata, legacy_uuid) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    e.cid,
                    e.name,
                    e.schema_ref,
                    e.data_urls,
                    e.metadata,
                    e.legacy_uuid
                ],
            )?;
            insert_label(&tx, &label)?;
            tx.commit().map(|()| true)
        })
        .await
    }

    async fn get_entry(&self, cid: &str) -> Result<Option<EntryRow>> {
        self.one_entry(select_entries!("WHERE e.cid = ?1"), [cid])
            .await
    }

    async fn find_entry_by_name(&self, name: &str) -> Result<Option<EntryRow>> {
        self.one_entry(select_entries!("WHERE e.name = ?1 LIMIT 1"), [name])
            .await
    }

    async fn entry_page(&self, cursor: Option<String>) -> Result<Page> {
        let after = cursor.unwrap_or_default();
        // Each row with its cid read apart, so a row whose other columns do not read is an
        // error naming it, and paging goes on past it.
        let rows = self
            .run(move |c| {
                let mut stmt =
                    c.prepare_cached(select_entries!("WHERE e.cid > ?1 ORDER BY e.cid LIMIT ?2"))?;
                stmt.query_map(params![after, PAGE], |r| {
                    Ok((r.get::<_, String>(0), entry_row(r)))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let full = rows.len() as i64 == PAGE;
        let next = rows
            .iter()
            .rev()
            .find_map(|(cid, _)| cid.as_ref().ok().cloned());
        let rows = rows
            .into_iter()
            .map(|(cid, row)| {
                row.map_err(|e| Error::Corrupt {
                    key: format!(
                        "dataset_entries({})",
                        cid.unwrap_or_else(|_| "a cid that is not text".into())
                    ),
                    reason: e.to_string(),
                })
            })
            .collect();
        Ok((rows, next.filter(|_| full)))
    }

    async fn delete_entry(&self, cid: &str, labels: &[LabelRow]) -> Result<bool> {
        let cid = cid.to_owned();
        let labels = labels.to_vec();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for l in &labels {
                tx.execute(
                    "DELETE FROM labels WHERE name = ?1 AND version = ?2 AND cid = ?3",
                    params![l.name, l.version, cid],
                )?;
            }
            let deleted = tx.execute("DELETE FROM dataset_entries WHERE cid = ?1", [&cid])?;
            tx.commit().map(|()| deleted == 1)
        })
        .await
    }

    async fn put_label(&self, label: LabelRow) -> Result<()> {
        self.run(move |c| insert_label(c, &label).map(drop)).await
    }

    async fn labels_of(&self, cid: &str) -> Result<Vec<LabelRow>> {
        let cid = cid.to_owned();
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, cid, version, description FROM labels WHERE cid = ?1 ORDER BY name, version",
            )?;
            stmt.query_map([cid], |r| {
                Ok(LabelRow {
                    name: r.get(0)?,
                    cid: r.get(1)?,
                    version: r.get(2)?,
                    description: r.get(3)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn get_labelled_entry(&self, name: &str, version: &str) -> Result<Option<EntryRow>> {
        let sql =
            select_entries!("JOIN labels l ON e.cid = l.cid WHERE l.name = ?1 AND l.version = ?2");
        self.one_entry(sql, [name, version]).await
    }

    async fn insert_schema(&self, schema: SchemaRow) -> Result<bool> {
        self.run(move |c| insert_schema(c, &schema)).await
    }

    async fn replace_schema(&self, schema: SchemaRow) -> Result<()> {
        self.run(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO schemas (name, version, schema_json) VALUES (?1, ?2, ?3)",
                params![schema.name, schema.version, schema.json],
            )
            .map(drop)
        })
        .await
    }

    async fn get_schema(&self, name: &str, version: &str) -> Result<Option<String>> {
        let (name, version) = (name.to_owned(), version.to_owned());
        self.run(move |c| {
            c.query_row(
                "SELECT schema_json FROM schemas WHERE name = ?1 AND version = ?2",
                [name, version],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    async fn schema_versions(&self, name: &str) -> Result<Vec<String>> {
        let name = name.to_owned();
        self.run(move |c| {
            let mut stmt = c.prepare_cached("SELECT version FROM schemas WHERE name = ?1")?;
            stmt.query_map([name], |r| r.get(0))?.collect()
        })
        .await
    }

    async fn all_schemas(&self) -> Result<Vec<(String, String)>> {
        self.run(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT name, version, schema_json FROM schemas ORDER BY name, version",
            )?;
            stmt.query_map([], |r| {
                let (name, version): (String, String) = (r.get(0)?, r.get(1)?);
                Ok((format!("schemas({name}@{version})"), r.get(2)?))
            })?
            .collect()
        })
        .await
    }
}
