use std::collections::HashMap;

use atdata::prelude::*;

#[packable]
struct Sample {
    label: String,
    counts: HashMap<String, i64>,
}

fn main() {}
