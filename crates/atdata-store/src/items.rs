//! What a store holds under a prefix, for `atdata gc`: objects, and uploads that were started
//! and never completed (S3 multipart uploads; a local store's `name#N` staging files).

use std::path::Path as FsPath;
use std::time::SystemTime;

use crate::error::{Error, Result};

/// An object, or an upload that was never completed, found under a prefix by
/// [`DataStore::list_items`](crate::DataStore::list_items).
///
/// ```
/// use atdata_store::StoredItem;
///
/// let item = StoredItem {
///     url: "s3://b/ds/data--1--000000.tar".into(),
///     size: None,
///     modified: std::time::SystemTime::UNIX_EPOCH,
///     upload_id: Some("abc".into()),
/// };
/// assert!(item.is_upload());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// The object's URL; for an upload, the URL its object would have had.
    pub url: String,
    /// Its size in bytes, when the store says.
    pub size: Option<u64>,
    /// When it was last written; for an upload, when it was started.
    pub modified: SystemTime,
    /// The upload's id (an S3 upload id, or a staging file's path); `None` for an object.
    pub upload_id: Option<String>,
}

impl StoredItem {
    /// Whether this is an upload that was never completed.
    pub fn is_upload(&self) -> bool {
        self.upload_id.is_some()
    }
}

/// The object key a staging file `root/{key}#{n}` belongs to, if `path` is one.
pub(crate) fn staging_key<'p>(root: &FsPath, path: &'p str) -> Option<&'p str> {
    let (object, n) = path.rsplit_once('#')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    FsPath::new(object).strip_prefix(root).ok()?.to_str()
}

/// Staging files a local store's multipart writes leave when the process dies:
/// `{object}#{n}` under `root/prefix`, as (object key, staging path, modified).
pub(crate) fn staging_files(
    root: &FsPath,
    prefix: &str,
) -> Result<Vec<(String, String, SystemTime)>> {
    let mut out = Vec::new();
    let mut pending = vec![root.join(prefix)];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::Io {
                    path: dir.display().to_string(),
                    source: e,
                });
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(path);
                continue;
            }
            let Some(name) = path.to_str() else { continue };
            let Some(key) = staging_key(root, name) else {
                continue;
            };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((key.to_owned(), name.to_owned(), modified));
        }
    }
    Ok(out)
}

#[cfg(feature = "s3")]
pub(crate) mod s3 {
    //! ListMultipartUploads and AbortMultipartUpload, signed with rusty-s3 and sent with
    //! reqwest (object_store has neither call).

    use std::time::{Duration, SystemTime};

    use rusty_s3::{Bucket, Method, UrlStyle, signing};
    use serde::Deserialize;

    use crate::credentials::Credentials;
    use crate::error::{Error, Result};

    const SIGNED_FOR: u64 = 300;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Listing {
        #[serde(default)]
        upload: Vec<Upload>,
        #[serde(default)]
        is_truncated: bool,
        next_key_marker: Option<String>,
        next_upload_id_marker: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Upload {
        key: String,
        upload_id: String,
        initiated: String,
    }

    /// The bucket's requests go to.
    fn bucket(credentials: &Credentials, name: &str) -> Result<Bucket> {
        let endpoint = credentials.endpoint().map_or_else(
            || format!("https://s3.{}.amazonaws.com", credentials.region()),
            str::to_owned,
        );
        let url = endpoint
            .parse()
            .map_err(|e| Error::Credentials(format!("AWS_ENDPOINT is not a URL: {e}")))?;
        Bucket::new(
            url,
            UrlStyle::Path,
            name.to_owned(),
            credentials.region().to_owned(),
        )
        .map_err(|e| Error::Credentials(format!("AWS_ENDPOINT cannot address a bucket: {e}")))
    }

    fn signed(
        credentials: &Credentials,
        bucket: &Bucket,
        method: Method,
        url: reqwest::Url,
        query: &[(&str, &str)],
    ) -> reqwest::Url {
        signing::sign(
            &jiff::Timestamp::now(),
            method,
            url,
            credentials.access_key_id(),
            credentials.secret_access_key(),
            credentials.session_token(),
            bucket.region(),
            SIGNED_FOR,
            query.iter().copied(),
            std::iter::empty(),
        )
    }

    fn client() -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Runtime(format!("cannot build an HTTP client: {e}")))
    }

    /// A request's failure, with the bucket and a short reason (never the signed URL).
    fn failed(bucket: &str, what: &str, reason: impl std::fmt::Display) -> Error {
        Error::Unsupported(format!("s3://{bucket}: {what} failed: {reason}"))
    }

    /// Every open multipart upload under `prefix`: (key, upload id, started).
    pub(crate) async fn list_uploads(
        credentials: &Credentials,
        name: &str,
        prefix: &str,
    ) -> Result<Vec<(String, String, SystemTime)>> {
        let bucket = bucket(credentials, name)?;
        let client = client()?;
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (String::new(), String::new());
        loop {
            let mut query = vec![("uploads", "")];
            // An empty `prefix=` breaks some servers' signature checks (SeaweedFS's).
            if !prefix.is_empty() {
                query.push(("prefix", prefix));
            }
            if !key_marker.is_empty() {
                query.push(("key-marker", &key_marker));
                query.push(("upload-id-marker", &id_marker));
            }
            let url = signed(
                credentials,
                &bucket,
                Method::Get,
                bucket.base_url().clone(),
                &query,
            );
            let response = client
                .get(url)
                .send()
                .await
                .map_err(|e| failed(name, "ListMultipartUploads", e.without_url()))?;
            let status = response.status();
            let body = response
                .text()
                .await
                .map_err(|e| failed(name, "ListMultipartUploads", e.without_url()))?;
            if !status.is_success() {
                return Err(failed(name, "ListMultipartUploads", status));
            }
            let listing: Listing = quick_xml::de::from_str(&body)
                .map_err(|e| failed(name, "ListMultipartUploads", e))?;
            for upload in listing.upload {
                let started = chrono::DateTime::parse_from_rfc3339(&upload.initiated)
                    .map(SystemTime::from)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((upload.key, upload.upload_id, started));
            }
            match (listing.is_truncated, listing.next_key_marker) {
                (true, Some(next)) if !next.is_empty() => {
                    key_marker = next;
                    id_marker = listing.next_upload_id_marker.unwrap_or_default();
                }
                _ => return Ok(out),
            }
        }
    }

    /// Aborts one multipart upload (its parts are freed).
    pub(crate) async fn abort_upload(
        credentials: &Credentials,
        name: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        let bucket = bucket(credentials, name)?;
        let url = signed(
            credentials,
            &bucket,
            Method::Delete,
            bucket.object_url(key),
            &[("uploadId", upload_id)],
        );
        let response = client()?
            .delete(url)
            .send()
            .await
            .map_err(|e| failed(name, "AbortMultipartUpload", e.without_url()))?;
        let status = response.status();
        if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(failed(name, "AbortMultipartUpload", status))
        }
    }
}
