use atdata::prelude::*;

struct Point {
    x: f64,
}

#[packable]
struct Sample {
    at: Point,
}

fn main() {}
