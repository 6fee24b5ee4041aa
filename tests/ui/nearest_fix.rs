use atdata::prelude::*;

#[packable]
struct Sample {
    id: u128,
    grade: char,
    ok: bool,
    tags: Vec<&'static str>,
}

fn main() {}
