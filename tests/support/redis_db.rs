//! A database of the test Redis, emptied for a test or benchmark: only when it is empty or
//! carries the suite's marker key, so data the suite did not write is never flushed.
//! `#[path]`-included beside `services.rs` by the test binary and the index benchmark.

/// The URL of database `db` of the test server (`ATDATA_TEST_REDIS_URL`), emptied and marked.
pub async fn fresh_db(db: u8) -> String {
    let url = format!("{}/{db}", super::services::redis_base());
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("the test Redis at {url} does not answer: {e}"));
    let keys: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    let marked: bool = redis::cmd("EXISTS")
        .arg(super::services::REDIS_MARKER)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        keys == 0 || marked,
        "database {db} of the test Redis holds {keys} key(s) the suite did not write: refusing to flush it"
    );
    let () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
    let () = redis::cmd("SET")
        .arg(super::services::REDIS_MARKER)
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    url
}
