use atdata::prelude::*;

#[packable]
struct Nothing;

fn main() {}
