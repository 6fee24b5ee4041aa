//! The Redis provider: Python atdata's key layout, byte for byte.
//!
//! `LocalDatasetEntry:{cid}` hashes, `Label:{name}@{version}` hashes and
//! `LocalSchema:{name}@{version}` strings of schema JSON.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::entry::{EntryRow, LabelRow};
use crate::error::{Error, Result};
use crate::provider::{Page, Provider, SchemaRow, SchemaWrite};

const ENTRY: &str = "LocalDatasetEntry:";
const SCHEMA: &str = "LocalSchema:";
const LABEL: &str = "Label:";
/// Keys asked for per SCAN call, and entries fetched per pipeline.
const PAGE: usize = 1000;

pub(crate) struct RedisProvider {
    conn: ConnectionManager,
    server: String,
    labelled: redis::Script,
    put_entry: redis::Script,
    delete_entry: redis::Script,
}

/// Follows a label to its entry on the server: one round trip instead of two.
const LABELLED_ENTRY: &str = r"
local cid = redis.call('HGET', KEYS[1], 'cid')
if not cid then return false end
return {cid, redis.call('HGETALL', ARGV[1] .. cid)}
";

/// Stores an entry, its label and (unless taken) its schema record in one atomic step.
/// KEYS: schema, entry, label. ARGV: schema JSON, `1` when the schema version must be new, the
/// number of entry fields, then the entry's and the label's field/value pairs. Returns 0, having
/// written nothing, when the version must be new and is taken.
const PUT_ENTRY: &str = r"
local stored = redis.call('SET', KEYS[1], ARGV[1], 'NX')
if not stored and ARGV[2] == '1' then return 0 end
local n = tonumber(ARGV[3])
local entry, label = {}, {}
for i = 4, 3 + 2 * n do entry[#entry + 1] = ARGV[i] end
for i = 4 + 2 * n, #ARGV do label[#label + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(entry))
redis.call('HSET', KEYS[3], unpack(label))
return 1
";

/// Deletes an entry and the labels that still point at it, in one atomic step.
/// KEYS: the entry, then label keys. ARGV: the cid. Returns 1 when the entry was there.
const DELETE_ENTRY: &str = r"
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'cid') == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return redis.call('DEL', KEYS[1])
";

/// A SCAN MATCH pattern matching `literal` exactly, then `*`.
fn glob_prefix(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 1);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

impl RedisProvider {
    pub(crate) async fn connect(url: &str) -> Result<RedisProvider> {
        let server = atdata_store::redact_url(url);
        let client = redis::Client::open(url).map_err(|source| Error::Redis {
            server: server.clone(),
            source,
        })?;
        // Fail within seconds when the server is down, and reconnect on the next call once it
        // is back (the manager reconnects in the background).
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|source| Error::Redis {
                server: server.clone(),
                source,
            })?;
        Ok(RedisProvider {
            conn,
            server,
            labelled: redis::Script::new(LABELLED_ENTRY),
            put_entry: redis::Script::new(PUT_ENTRY),
            delete_entry: redis::Script::new(DELETE_ENTRY),
        })
    }

    fn err(&self, source: redis::RedisError) -> Error {
        Error::Redis {
            server: self.server.clone(),
            source,
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        cmd.query_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(e))
    }

    /// One SCAN step: the next cursor and the keys found.
    async fn scan(&self, cursor: u64, pattern: &str) -> Result<(u64, Vec<Vec<u8>>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(PAGE);
        self.query(&cmd).await
    }

    /// Every key matching `pattern`, each once.
    async fn scan_all(&self, pattern: &str) -> Result<Vec<Vec<u8>>> {
        let (mut cursor, mut seen, mut keys) = (0, HashSet::new(), Vec::new());
        loop {
            let (next, found) = self.scan(cursor, pattern).await?;
            keys.extend(found.into_iter().filter(|k| seen.insert(k.clone())));
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

fn entry_row(key: &[u8], mut h: HashMap<String, Vec<u8>>) -> Result<EntryRow> {
    // The key's text is needed only for errors and for entries stored without a `cid` field.
    let key_text = || String::from_utf8_lossy(key).into_owned();
    let corrupt = |reason: String| Error::Corrupt {
        key: key_text(),
        reason,
    };
    let mut take = |field: &str| h.remove(field);
    let text = |field: &str, bytes: Option<Vec<u8>>| -> Result<Option<String>> {
        bytes
            .map(String::from_utf8)
            .transpose()
            .map_err(|_| corrupt(format!("field {field} is not UTF-8")))
    };
    let name = text("name", take("name"))?.ok_or_else(|| corrupt("no name field".into()))?;
    let schema_ref = text("schema_ref", take("schema_ref"))?
        .ok_or_else(|| corrupt("no schema_ref field".into()))?;
    let legacy_uuid = text("legacy_uuid", take("legacy_uuid"))?;
    let cid = match text("cid", take("cid"))? {
        Some(cid) => cid,
        None => {
            let key = key_text();
            key.strip_prefix(ENTRY).unwrap_or(&key).to_owned()
        }
    };
    let data_urls = take("data_urls").ok_or_else(|| corrupt("no data_urls field".into()))?;
    Ok(EntryRow {
        cid,
        name,
        schema_ref,
        data_urls,
        metadata: take("metadata"),
        legacy_uuid,
    })
}

/// An entry's hash fields, in the order Python writes them.
fn entry_fields(e: &EntryRow) -> Vec<(&'static str, &[u8])> {
    let mut fields = vec![
        ("name", e.name.as_bytes()),
        ("schema_ref", e.schema_ref.as_bytes()),
        ("data_urls", &e.data_urls[..]),
        ("cid", e.cid.as_bytes()),
    ];
    if let Some(m) = &e.metadata {
        fields.push(("metadata", &m[..]));
    }
    if let Some(u) = &e.legacy_uuid {
        fields.push(("legacy_uuid", u.as_bytes()));
    }
    fields
}

/// A label's hash fields.
fn label_fields(l: &LabelRow) -> Vec<(&'static str, &[u8])> {
    let mut fields = vec![
        ("cid", l.cid.as_bytes()),
        ("name", l.name.as_bytes()),
        ("version", l.version.as_bytes()),
    ];
    if let Some(d) = &l.description {
        fields.push(("description", d.as_bytes()));
    }
    fields
}

fn label_key(l: &LabelRow) -> String {
    format!("{LABEL}{}@{}", l.name, l.version)
}

#[async_trait]
impl Provider for RedisProvider {
    fn describe(&self) -> String {
        self.server.clone()
    }

    async fn put_entry(
        &self,
        entry: EntryRow,
        label: LabelRow,
        schema: SchemaRow,
        mode: SchemaWrite,
    ) -> Result<bool> {
        let entry_fields = entry_fields(&entry);
        let mut call = self.put_entry.prepare_invoke();
        call.key(format!("{SCHEMA}{}@{}", schema.name, schema.version))
            .key(format!("{ENTRY}{}", entry.cid))
            .key(label_key(&label))
            .arg(schema.json)
            .arg(if mode == SchemaWrite::MustBeNew {
                "1"
            } else {
                "0"
            })
            .arg(entry_fields.len());
        for (field, value) in entry_fields.into_iter().chain(label_fields(&label)) {
            call.arg(field).arg(value);
        }
        let stored: i64 = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(e))?;
        Ok(stored == 1)
    }

    async fn get_entry(&self, cid: &str) -> Result<Option<EntryRow>> {
        let key = format!("{ENTRY}{cid}");
        let h: HashMap<String, Vec<u8>> = self.query(redis::cmd("HGETALL").arg(&key)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        entry_row(key.as_bytes(), h).map(Some)
    }

    async fn find_entry_by_name(&self, name: &str) -> Result<Option<EntryRow>> {
        let mut cursor = None;
        loop {
            let (rows, next) = self.entry_page(cursor).await?;
            // A row that cannot be read is not the one asked for: the scan goes on.
            if let Some(row) = rows.into_iter().flatten().find(|r| r.name == name) {
                return Ok(Some(row));
            }
            match next {
                Some(next) => cursor = Some(next),
                None => return Ok(None),
            }
        }
    }

    async fn entry_page(&self, cursor: Option<String>) -> Result<Page> {
        let start = cursor
            .map_or(Ok(0), |c| c.parse::<u64>())
            .map_err(|_| Error::Invalid("a Redis page cursor that is not a number".into()))?;
        let pattern = format!("{ENTRY}*");
        let (mut next, mut keys) = self.scan(start, &pattern).await?;
        // SCAN may return nothing for a step; keep going until there are keys or the end.
        while keys.is_empty() && next != 0 {
            (next, keys) = self.scan(next, &pattern).await?;
        }
        let mut pipe = redis::pipe();
        // One key of the wrong type fails its own command, not the page.
        pipe.ignore_errors();
        for key in &keys {
            pipe.cmd("HGETALL").arg(&key[..]);
        }
        let hashes: Vec<redis::RedisResult<HashMap<String, Vec<u8>>>> = if keys.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut self.conn.clone())
                .await
                .map_err(|e| self.err(e))?
        };
        let rows = keys
            .iter()
            .zip(hashes)
            .filter(|(_, h)| !matches!(h, Ok(h) if h.is_empty())) // deleted since the SCAN
            .map(|(k, h)| match h {
                Ok(h) => entry_row(k, h),
                Err(e) => Err(Error::Corrupt {
                    key: String::from_utf8_lossy(k).into_owned(),
                    reason: format!("not an entry hash: {e}"),
                }),
            })
            .collect();
        Ok((rows, (next != 0).then(|| next.to_string())))
    }

    async fn delete_entry(&self, cid: &str, labels: &[LabelRow]) -> Result<bool> {
        let mut call = self.delete_entry.prepare_invoke();
        call.key(format!("{ENTRY}{cid}"));
        for label in labels {
            call.key(label_key(label));
        }
        call.arg(cid);
        let deleted: i64 = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(e))?;
        Ok(deleted == 1)
    }

    async fn labels_of(&self, cid: &str) -> Result<Vec<LabelRow>> {
        let keys = self.scan_all(&format!("{LABEL}*")).await?;
        let mut labels = Vec::new();
        for chunk in keys.chunks(PAGE) {
            let mut pipe = redis::pipe();
            // A key of another type under `Label:` is not a label: it fails alone.
            pipe.ignore_errors();
            for key in chunk {
                pipe.cmd("HMGET")
                    .arg(&key[..])
                    .arg("cid")
                    .arg("name")
                    .arg("version");
            }
            type Fields = (Option<String>, Option<String>, Option<String>);
            let found: Vec<redis::RedisResult<Fields>> = pipe
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| self.err(e))?;
            for (key, fields) in chunk.iter().zip(found) {
                let Ok((Some(label_cid), name, version)) = fields else {
                    continue;
                };
                if label_cid != cid {
                    continue;
                }
                // `Label:{name}@{version}`: the key says it when the fields do not.
                let key = String::from_utf8_lossy(key);
                let (key_name, key_version) = key
                    .strip_prefix(LABEL)
                    .and_then(|k| k.rsplit_once('@'))
                    .unwrap_or_default();
                labels.push(LabelRow {
                    name: name.unwrap_or_else(|| key_name.to_owned()),
                    cid: label_cid,
                    version: version.unwrap_or_else(|| key_version.to_owned()),
                    description: None,
                });
            }
        }
        Ok(labels)
    }

    async fn put_label(&self, label: LabelRow) -> Result<()> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(label_key(&label));
        for (field, value) in label_fields(&label) {
            cmd.arg(field).arg(value);
        }
        self.query(&cmd).await
    }

    async fn get_labelled_entry(&self, name: &str, version: &str) -> Result<Option<EntryRow>> {
        let found: Option<(String, Vec<Vec<u8>>)> = self
            .labelled
            .key(format!("{LABEL}{name}@{version}"))
            .arg(ENTRY)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| self.err(e))?;
        let Some((cid, flat)) = found.filter(|(_, flat)| !flat.is_empty()) else {
            return Ok(None);
        };
        let key = format!("{ENTRY}{cid}");
        let mut fields = HashMap::new();
        let mut items = flat.into_iter();
        while let (Some(field), Some(value)) = (items.next(), items.next()) {
            let field = String::from_utf8(field).map_err(|_| Error::Corrupt {
                key: key.clone(),
                reason: "a field name that is not UTF-8".into(),
            })?;
            fields.insert(field, value);
        }
        entry_row(key.as_bytes(), fields).map(Some)
    }

    async fn insert_schema(&self, schema: SchemaRow) -> Result<bool> {
        let key = format!("{SCHEMA}{}@{}", schema.name, schema.version);
        let stored: Option<String> = self
            .query(redis::cmd("SET").arg(key).arg(schema.json).arg("NX"))
            .await?;
        Ok(stored.is_some())
    }

    async fn replace_schema(&self, schema: SchemaRow) -> Result<()> {
        let key = format!("{SCHEMA}{}@{}", schema.name, schema.version);
        self.query(redis::cmd("SET").arg(key).arg(schema.json))
            .await
    }

    async fn get_schema(&self, name: &str, version: &str) -> Result<Option<String>> {
        let key = format!("{SCHEMA}{name}@{version}");
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn schema_versions(&self, name: &str) -> Result<Vec<String>> {
        let prefix = format!("{SCHEMA}{name}@");
        let keys = self.scan_all(&glob_prefix(&prefix)).await?;
        Ok(keys
            .iter()
            .filter_map(|k| std::str::from_utf8(k).ok()?.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect())
    }

    async fn all_schemas(&self) -> Result<Vec<(String, String)>> {
        let keys = self.scan_all(&format!("{SCHEMA}*")).await?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(PAGE) {
            let texts: Vec<Option<String>> = self.query(redis::cmd("MGET").arg(chunk)).await?;
            out.extend(
                chunk
                    .iter()
                    .zip(texts)
                    .filter_map(|(k, t)| Some((String::from_utf8_lossy(k).into_owned(), t?))),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_and_options() {
        let redact = atdata_store::redact_url;
        assert_eq!(
            redact("redis://:s3cret@10.0.0.1:6380/4?x=1"),
            "redis://10.0.0.1:6380/4"
        );
        assert_eq!(redact("rediss://u:p@h"), "rediss://h");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        for url in [
            "redis://:pa/ss@127.0.0.1:6379/2",
            "redis://:pa?ss@127.0.0.1:6379/2",
            "redis://:pa#ss@127.0.0.1:6379/2",
            "redis://:p@a/s?s#@127.0.0.1:6379/2",
        ] {
            assert_eq!(redact(url), "redis://127.0.0.1:6379/2", "{url}");
        }
    }

    #[test]
    fn glob_patterns_match_names_literally() {
        assert_eq!(
            glob_prefix("LocalSchema:a*b[1]@"),
            r"LocalSchema:a\*b\[1\]@*"
        );
    }
}
