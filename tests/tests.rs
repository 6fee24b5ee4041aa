//! Tests of the facade against the vectors Python atdata produced (`golden/`), property tests,
//! the index on Redis and SQLite, the `atdata` command and the examples end to end, the API
//! contract (`api_contract.rs`, a copy of the spec's, compile-only), and the `#[packable]`
//! misuse diagnostics. One binary, to link once.

mod api_contract;
mod arrays;
mod bad_input;
mod batch_path;
mod cids;
mod cli;
mod conveniences;
mod datasets;
mod faults;
mod fuzz_seeds;
mod golden;
mod hardening;
#[path = "support/http.rs"]
mod http;
mod index;
mod inserts;
mod loader;
#[path = "support/redis_db.rs"]
mod redis_db;
mod remote;
mod roundtrip;
mod samples;
mod schemas;
#[path = "support/services.rs"]
mod services;
mod sidecars;
mod stores;
mod streamed;
#[path = "support/threads.rs"]
mod threads;
mod ui;
mod workflow;
