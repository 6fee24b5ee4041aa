use atdata::prelude::*;

#[packable]
struct Pair(i64, String);

fn main() {}
