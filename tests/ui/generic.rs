use atdata::prelude::*;

#[packable]
struct Wrapper<T> {
    value: T,
}

fn main() {}
