//! Dataset entries and how they are stored.

use atdata_codec::{Cid, entry_cid, json_to_msgpack, msgpack_to_json};
use serde_json::Value;

use crate::error::{Error, Result};

/// A dataset in the index: a name, the schema its samples follow, the shard URLs, and
/// metadata, identified by a CID of `{schema_ref, data_urls}` (as Python atdata computes it).
///
/// ```
/// use atdata_index::LocalDatasetEntry;
///
/// let entry = LocalDatasetEntry::new(
///     "golden-images",
///     "atdata://local/schema/GoldenImage@1.0.0",
///     vec!["shards/golden_image-{000000..000001}.tar".into()],
///     None,
/// ).unwrap();
/// assert_eq!(entry.cid().to_string(), "bafyreidguopn2tyxrys5lpmlqgorvccrtz6devk3hievskv7pt5im4xrce");
/// assert_eq!(entry.wds_url(), "shards/golden_image-{000000..000001}.tar");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LocalDatasetEntry {
    /// The dataset's name (any UTF-8, slashes included).
    pub name: String,
    /// The schema reference, as given when the entry was made.
    pub schema_ref: String,
    /// The shard URLs (one brace pattern, or the URLs a store wrote).
    pub data_urls: Vec<String>,
    /// Free-form metadata (a JSON object, keys in their stored order), with a `checksums`
    /// object (URL to SHA-256) when the shards were written through a data store.
    pub metadata: Option<Value>,
    /// The UUID of entries made by atdata before CIDs (read, never written).
    pub legacy_uuid: Option<String>,
    /// The CID and the `schema_ref` and `data_urls` it was made for (or read with): when
    /// either field has changed since, [`cid`](Self::cid) computes it anew.
    cid: (Cid, String, Vec<String>),
}

impl LocalDatasetEntry {
    /// An entry, its CID computed from `schema_ref` and `data_urls`.
    pub fn new(
        name: impl Into<String>,
        schema_ref: impl Into<String>,
        data_urls: Vec<String>,
        metadata: Option<Value>,
    ) -> Result<LocalDatasetEntry> {
        let schema_ref = schema_ref.into();
        let cid = entry_cid(&schema_ref, &data_urls)?;
        Ok(LocalDatasetEntry {
            name: name.into(),
            cid: (cid, schema_ref.clone(), data_urls.clone()),
            schema_ref,
            data_urls,
            metadata,
            legacy_uuid: None,
        })
    }

    /// The content identifier (`bafyrei...`) of `schema_ref` and `data_urls` as they are now:
    /// the stored one for an entry read from an index (even one computed otherwise, by an
    /// older writer), computed again once either field is changed.
    ///
    /// ```
    /// let mut entry = atdata_index::LocalDatasetEntry::new("a", "atdata://local/schema/A@1.0.0", vec!["a.tar".into()], None).unwrap();
    /// let before = entry.cid();
    /// entry.data_urls.push("b.tar".into());
    /// assert_ne!(entry.cid(), before);
    /// ```
    pub fn cid(&self) -> Cid {
        let (cid, schema_ref, data_urls) = &self.cid;
        if *schema_ref == self.schema_ref && *data_urls == self.data_urls {
            return *cid;
        }
        // The DAG-CBOR of two strings' structure cannot fail to encode; if it ever did, the
        // old CID is the honest fallback of a value that cannot be identified anew.
        entry_cid(&self.schema_ref, &self.data_urls).unwrap_or(*cid)
    }

    /// The first data URL (the seed's `wds_url`).
    pub fn wds_url(&self) -> &str {
        self.data_urls.first().map_or("", String::as_str)
    }

    /// All the data URLs as one URL a `Dataset` reads: the URL itself when there is one, a
    /// zero-padded range when they are a store's numbered shards, else a `{a,b,...}` list.
    ///
    /// ```
    /// let e = atdata_index::LocalDatasetEntry::new("n", "atdata://local/schema/T@1.0.0",
    ///     vec!["s3://b/p/data--x--000000.tar".into(), "s3://b/p/data--x--000001.tar".into()], None).unwrap();
    /// assert_eq!(e.shards_url(), "s3://b/p/data--x--{000000..000001}.tar");
    /// ```
    pub fn shards_url(&self) -> String {
        match self.data_urls.as_slice() {
            [one] => one.clone(),
            urls => {
                let last = urls.len().saturating_sub(1);
                let range = urls
                    .first()
                    .and_then(|u| u.strip_suffix("000000.tar"))
                    .map(|base| format!("{base}{{000000..{last:06}}}.tar"));
                match range {
                    Some(r) if atdata_wds::expand_urls(&r).is_ok_and(|e| e == urls) => r,
                    _ => format!("{{{}}}", urls.join(",")),
                }
            }
        }
    }

    /// The samples in the dataset, from the `sample_counts` an insert records in the metadata
    /// (`None` when a shard has no count, as for entries made by `add_entry` or by Python).
    ///
    /// ```
    /// let e = atdata_index::LocalDatasetEntry::new("n", "atdata://local/schema/T@1.0.0",
    ///     vec!["a.tar".into(), "b.tar".into()],
    ///     Some(serde_json::json!({"sample_counts": {"a.tar": 3, "b.tar": 4}}))).unwrap();
    /// assert_eq!(e.sample_count(), Some(7));
    /// assert_eq!(e.shard_sizes(), None);
    /// ```
    pub fn sample_count(&self) -> Option<u64> {
        self.per_shard("sample_counts")?.into_iter().sum()
    }

    /// Each shard's size in bytes, in the order of `data_urls`, from the `shard_sizes` an
    /// insert records (`None` when a shard has none).
    pub fn shard_sizes(&self) -> Option<Vec<u64>> {
        self.per_shard("shard_sizes")?.into_iter().collect()
    }

    /// What the metadata records of each shard (its `sample_counts` and `shard_sizes`), by
    /// data URL, for [`Dataset::with_shard_facts`](atdata_wds::Dataset::with_shard_facts):
    /// `len()` then reads nothing, and each sidecar read is checked against them.
    ///
    /// ```
    /// let e = atdata_index::LocalDatasetEntry::new("n", "atdata://local/schema/T@1.0.0",
    ///     vec!["a.tar".into(), "b.tar".into()],
    ///     Some(serde_json::json!({"sample_counts": {"a.tar": 3}, "shard_sizes": {"a.tar": 10240}}))).unwrap();
    /// let facts = e.shard_facts();
    /// assert_eq!(facts[0].1, atdata_wds::ShardFacts { samples: Some(3), bytes: Some(10240) });
    /// assert_eq!(facts[1].1, atdata_wds::ShardFacts::default());
    /// ```
    pub fn shard_facts(&self) -> Vec<(String, atdata_wds::ShardFacts)> {
        let counts = self.per_shard("sample_counts").unwrap_or_default();
        let sizes = self.per_shard("shard_sizes").unwrap_or_default();
        self.data_urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let facts = atdata_wds::ShardFacts {
                    samples: counts.get(i).copied().flatten(),
                    bytes: sizes.get(i).copied().flatten(),
                };
                (url.clone(), facts)
            })
            .collect()
    }

    /// The SHA-256 (hex) the metadata's `checksums` records for each data URL that has one,
    /// as inserts write it: what `atdata verify` checks and a shard cache keys copies by.
    ///
    /// ```
    /// let meta = serde_json::json!({"checksums": {"a.tar": "ab12"}});
    /// let e = atdata_index::LocalDatasetEntry::new("n", "atdata://local/schema/T@1.0.0", vec!["a.tar".into(), "b.tar".into()], Some(meta)).unwrap();
    /// assert_eq!(e.checksums(), [("a.tar".to_owned(), "ab12".to_owned())]);
    /// ```
    pub fn checksums(&self) -> Vec<(String, String)> {
        let sums = self.metadata.as_ref().and_then(|m| m.get("checksums"));
        self.data_urls
            .iter()
            .filter_map(|url| {
                let sum = sums?.get(url)?.as_str()?;
                Some((url.clone(), sum.to_owned()))
            })
            .collect()
    }

    /// The integers the metadata object `key` holds for each data URL.
    fn per_shard(&self, key: &str) -> Option<Vec<Option<u64>>> {
        let map = self.metadata.as_ref()?.get(key)?.as_object()?;
        Some(
            self.data_urls
                .iter()
                .map(|u| map.get(u).and_then(Value::as_u64))
                .collect(),
        )
    }

    /// The schema reference (the seed's `sample_kind`).
    pub fn sample_kind(&self) -> &str {
        &self.schema_ref
    }

    /// The entry as Python's `Index` returns it: `name, schema_ref, data_urls, metadata, cid`.
    ///
    /// ```
    /// let e = atdata_index::LocalDatasetEntry::new("n", "atdata://local/schema/T@1.0.0", vec!["a.tar".into()], None).unwrap();
    /// assert_eq!(e.to_json()["data_urls"], serde_json::json!(["a.tar"]));
    /// ```
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "schema_ref": self.schema_ref,
            "data_urls": self.data_urls,
            "metadata": self.metadata,
            "cid": self.cid().to_string(),
        })
    }

    pub(crate) fn to_row(&self) -> Result<EntryRow> {
        let urls = Value::from(self.data_urls.clone());
        Ok(EntryRow {
            cid: self.cid().to_string(),
            name: self.name.clone(),
            schema_ref: self.schema_ref.clone(),
            data_urls: json_to_msgpack(&urls)?,
            metadata: self.metadata.as_ref().map(json_to_msgpack).transpose()?,
            legacy_uuid: self.legacy_uuid.clone(),
        })
    }

    pub(crate) fn from_row(row: EntryRow) -> Result<LocalDatasetEntry> {
        let corrupt = |reason: String| Error::Corrupt {
            key: format!("LocalDatasetEntry:{}", row.cid),
            reason,
        };
        let cid = row
            .cid
            .parse::<Cid>()
            .map_err(|e| corrupt(format!("cid: {e}")))?;
        let urls =
            msgpack_to_json(&row.data_urls).map_err(|e| corrupt(format!("data_urls: {e}")))?;
        let data_urls = match urls {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(corrupt(format!("data_urls holds {other}, not a string"))),
                })
                .collect::<Result<Vec<_>>>()?,
            other => return Err(corrupt(format!("data_urls is {other}, not a list"))),
        };
        let metadata = row
            .metadata
            .as_deref()
            .map(msgpack_to_json)
            .transpose()
            .map_err(|e| corrupt(format!("metadata: {e}")))?;
        Ok(LocalDatasetEntry {
            name: row.name,
            cid: (cid, row.schema_ref.clone(), data_urls.clone()),
            schema_ref: row.schema_ref,
            data_urls,
            metadata,
            legacy_uuid: row.legacy_uuid,
        })
    }
}

/// An entry as both providers store it: text columns and msgpack blobs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EntryRow {
    pub cid: String,
    pub name: String,
    pub schema_ref: String,
    pub data_urls: Vec<u8>,
    pub metadata: Option<Vec<u8>>,
    pub legacy_uuid: Option<String>,
}

/// A name pointing at an entry: `Label:{name}@{version}` (version empty when unversioned).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LabelRow {
    pub name: String,
    pub cid: String,
    pub version: String,
    pub description: Option<String>,
}
