//! S3 credentials from a map, a `.env` file or the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};

/// Credentials and endpoint for an S3-compatible server.
///
/// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are required; `AWS_ENDPOINT` is optional
/// (AWS itself when absent; `http://` endpoints are allowed), and so are `AWS_REGION` (default
/// `us-east-1`) and `AWS_SESSION_TOKEN`. The secret and the token never appear in `Debug`
/// output, logs or error messages.
///
/// ```
/// use atdata_store::Credentials;
///
/// let c = Credentials::from_map([
///     ("AWS_ENDPOINT", "http://localhost:9000"),
///     ("AWS_ACCESS_KEY_ID", "minioadmin"),
///     ("AWS_SECRET_ACCESS_KEY", "very-secret"),
/// ]).unwrap();
/// assert_eq!(c.endpoint(), Some("http://localhost:9000"));
/// assert!(!format!("{c:?}").contains("very-secret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    endpoint: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    region: String,
}

impl Credentials {
    /// From key-value pairs named like the environment variables.
    pub fn from_map<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Credentials> {
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let required = |key: &str| {
            map.get(key)
                .cloned()
                .ok_or_else(|| Error::Credentials(format!("{key} is missing")))
        };
        let credentials = Credentials {
            endpoint: map
                .get("AWS_ENDPOINT")
                .or_else(|| map.get("AWS_ENDPOINT_URL"))
                .cloned(),
            access_key_id: required("AWS_ACCESS_KEY_ID")?,
            secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
            session_token: map.get("AWS_SESSION_TOKEN").cloned(),
            region: map
                .get("AWS_REGION")
                .or_else(|| map.get("AWS_DEFAULT_REGION"))
                .cloned()
                .unwrap_or_else(|| "us-east-1".to_owned()),
        };
        credentials.validate()?;
        Ok(credentials)
    }

    /// Checks what the S3 client would otherwise fail on deep inside a request (or panic on):
    /// an endpoint that is not an `http(s)://host[:port][/path]` URL or carries credentials,
    /// and values that cannot go into a request header. Messages never show a secret.
    fn validate(&self) -> Result<()> {
        let header_safe = |name: &str, value: &str| {
            if value.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(())
            } else {
                Err(Error::Credentials(format!(
                    "{name} holds a space, a control character or a non-ASCII character"
                )))
            }
        };
        header_safe("AWS_ACCESS_KEY_ID", &self.access_key_id)?;
        header_safe("AWS_SECRET_ACCESS_KEY", &self.secret_access_key)?;
        if let Some(token) = &self.session_token {
            header_safe("AWS_SESSION_TOKEN", token)?;
        }
        if !self
            .region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::Credentials(
                "AWS_REGION may hold only letters, digits and `-` (as `us-east-1`)".into(),
            ));
        }
        let Some(endpoint) = &self.endpoint else {
            return Ok(());
        };
        let shown = redact_url(endpoint);
        let bad = |why: &str| Err(Error::Credentials(format!("AWS_ENDPOINT `{shown}`: {why}")));
        let Some(rest) = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
        else {
            return bad("expected an http:// or https:// URL");
        };
        if !endpoint.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("holds a space, a control character or a non-ASCII character");
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return bad(
                "must not carry credentials (`user:password@`); give AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            );
        }
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        if host.is_empty() {
            return bad("has no host");
        }
        let port = match authority.strip_prefix('[') {
            Some(v6) => v6.split_once("]:").map(|(_, p)| p),
            None => authority.split_once(':').map(|(_, p)| p),
        };
        if port.is_some_and(|p| p.parse::<u16>().is_err()) {
            return bad("has a port that is not a number from 0 to 65535");
        }
        if rest.contains(['?', '#']) {
            return bad("must not carry a query or a fragment");
        }
        Ok(())
    }

    /// From a `.env` file (read with dotenvy; the process environment is not changed).
    pub fn from_env_file(path: impl AsRef<Path>) -> Result<Credentials> {
        let path = path.as_ref();
        let pairs = dotenvy::from_path_iter(path)
            .map_err(|e| Error::Credentials(format!("{}: {}", path.display(), describe(&e))))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Credentials(format!("{}: {}", path.display(), describe(&e))))?;
        Credentials::from_map(pairs)
    }

    /// From the process environment.
    pub fn from_env() -> Result<Credentials> {
        Credentials::from_map(std::env::vars().filter(|(k, _)| k.starts_with("AWS_")))
    }

    /// The endpoint, or `None` for AWS itself.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The access key id (not secret).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    #[cfg(feature = "s3")]
    pub(crate) fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    #[cfg(feature = "s3")]
    pub(crate) fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }
}

/// `url` as messages may show it: no user or password, no query or fragment (which may carry
/// tokens). Works on every scheme the project takes (`redis://`, `rediss://`, `http(s)://`,
/// `s3://`, ...), whatever characters a password holds (`/`, `?`, `#`, `@` included): the
/// host is what follows the last `@`.
///
/// ```
/// use atdata_store::redact_url;
///
/// assert_eq!(redact_url("redis://:p/a?s#s@10.0.0.1:6380/4?x=1"), "redis://10.0.0.1:6380/4");
/// assert_eq!(redact_url("https://user:pw@s3.example.com/path?X-Amz-Signature=abc"), "https://s3.example.com/path");
/// assert_eq!(redact_url("sqlite:/home/me/index.db"), "sqlite:/home/me/index.db");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL with an authority: a path, `sqlite:PATH`. Nothing to cut unless it looks
        // like it holds credentials.
        return if url.contains('@') {
            "<a value that is not shown>".to_owned()
        } else {
            url.to_owned()
        };
    };
    let after_user = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let end = after_user.find(['?', '#']).unwrap_or(after_user.len());
    format!("{scheme}://{}", &after_user[..end])
}

/// A dotenvy error without the line's content (which may hold a secret).
fn describe(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(_, index) => format!("cannot parse line at byte {index}"),
        dotenvy::Error::Io(io) => io.to_string(),
        _ => "cannot read the file".to_owned(),
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_read_without_touching_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "AWS_ACCESS_KEY_ID=id\nAWS_SECRET_ACCESS_KEY=s3cr3t-value\n# comment\nAWS_REGION=eu-west-1\n").unwrap();
        let c = Credentials::from_env_file(&path).unwrap();
        assert_eq!(
            (c.access_key_id(), c.region(), c.endpoint()),
            ("id", "eu-west-1", None)
        );
        assert!(std::env::var("AWS_SECRET_ACCESS_KEY").map_or(true, |v| v != "s3cr3t-value"));
    }

    #[test]
    fn secrets_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "AWS_ACCESS_KEY_ID=id\nAWS_SECRET_ACCESS_KEY='s3cr3t-value\n",
        )
        .unwrap();
        let err = Credentials::from_env_file(&path).unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        let c = Credentials::from_map([
            ("AWS_ACCESS_KEY_ID", "id"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "t0ken"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0ken"),
            "{shown}"
        );
    }

    #[test]
    fn missing_keys_are_named() {
        let err = Credentials::from_map([("AWS_SECRET_ACCESS_KEY", "x")]).unwrap_err();
        assert_eq!(err.to_string(), "credentials: AWS_ACCESS_KEY_ID is missing");
        let err = Credentials::from_env_file("/no/such/.env").unwrap_err();
        assert!(
            err.to_string().starts_with("credentials: /no/such/.env"),
            "{err}"
        );
    }
}
