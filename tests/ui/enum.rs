use atdata::prelude::*;

#[packable]
enum Label {
    Cat,
    Dog,
}

fn main() {}
