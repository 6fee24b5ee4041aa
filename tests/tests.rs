//! Tests of the facade against the vectors Python atdata produced (`golden/`), property tests,
//! and the `#[packable]` misuse diagnostics. One binary, to link once.

mod arrays;
mod cids;
mod datasets;
mod faults;
mod golden;
mod roundtrip;
mod samples;
mod schemas;
mod stores;
mod ui;
