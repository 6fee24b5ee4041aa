//! Tests of the facade against the vectors Python atdata produced (`golden/`), property tests,
//! the index on Redis and SQLite, and the `#[packable]` misuse diagnostics. One binary, to link once.

mod arrays;
mod cids;
mod datasets;
mod faults;
mod golden;
mod index;
mod roundtrip;
mod samples;
mod schemas;
mod stores;
mod ui;
