use atdata::prelude::*;

#[packable(rename = "Other")]
struct Sample {
    label: String,
}

fn main() {}
