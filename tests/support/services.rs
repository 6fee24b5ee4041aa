//! The test services as the tests and benchmarks see them: only the test-specific variables
//! that `scripts/services.sh` prints (never a user's `REDIS_URL` or `AWS_*`), and only servers
//! on loopback. Shared by the test binary and the benchmarks (`#[path]`-included: it needs
//! nothing but std).
#![allow(dead_code)] // each includer uses its part

/// How to get the variables, for failure messages.
const HOW: &str = "run `bash scripts/test.sh`, or `eval \"$(bash scripts/services.sh)\"` first";

/// The key that marks a Redis database as the test suite's own: a database holding keys but
/// not this one is never flushed.
pub const REDIS_MARKER: &str = "atdata-test:owned";

/// The value of the test variable `name`, or a failure saying how to set it.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {HOW}"))
}

/// Fails unless `url`'s host is a loopback address (127.0.0.0/8, `localhost`, `[::1]`).
pub fn require_loopback(name: &str, url: &str) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    assert!(
        loopback,
        "{name} must name a server on loopback (127.0.0.1, localhost, [::1]); the tests refuse any other host"
    );
}

/// `ATDATA_TEST_REDIS_URL` (no database), checked to be on loopback.
pub fn redis_base() -> String {
    let url = var("ATDATA_TEST_REDIS_URL");
    require_loopback("ATDATA_TEST_REDIS_URL", &url);
    url.trim_end_matches('/').to_owned()
}

/// The test S3 server.
#[derive(Debug, Clone)]
pub struct TestS3 {
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

/// The `ATDATA_TEST_S3_*` settings, the endpoint checked to be on loopback.
pub fn s3() -> TestS3 {
    let endpoint = var("ATDATA_TEST_S3_ENDPOINT");
    require_loopback("ATDATA_TEST_S3_ENDPOINT", &endpoint);
    TestS3 {
        endpoint,
        bucket: var("ATDATA_TEST_S3_BUCKET"),
        access_key_id: var("ATDATA_TEST_S3_ACCESS_KEY_ID"),
        secret_access_key: var("ATDATA_TEST_S3_SECRET_ACCESS_KEY"),
        region: std::env::var("ATDATA_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
    }
}

impl TestS3 {
    /// The `AWS_*` variables a child process (the `atdata` command) reads, set to this server.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", &self.endpoint),
            ("AWS_ACCESS_KEY_ID", &self.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &self.secret_access_key),
            ("AWS_REGION", &self.region),
            ("AWS_BUCKET", &self.bucket),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }
}

/// Removes a user's index and S3 variables from a child process's environment, so that a
/// command under test reaches only what the test gives it.
pub fn scrub(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for name in [
        "ATDATA_INDEX",
        "REDIS_URL",
        "AWS_ENDPOINT",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_BUCKET",
        "AWS_PROFILE",
    ] {
        cmd.env_remove(name);
    }
    cmd
}
