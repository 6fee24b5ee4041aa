use atdata::prelude::*;

// Every problem is reported in one build.
#[packable(bogus)]
struct Sample<T>(T);

fn main() {}
