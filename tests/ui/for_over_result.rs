#![deny(for_loops_over_fallibles)]

use atdata::prelude::*;

#[packable]
struct Row {
    id: usize,
}

fn main() {
    let ds = Dataset::<Row>::new("rows.tar").unwrap();
    for row in ds.samples() {
        let _ = row;
    }
}
