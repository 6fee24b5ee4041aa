use atdata::prelude::*;

#[packable]
struct Sample {
    note: Option<Option<String>>,
}

fn main() {}
