use atdata::ndarray::Array1;
use atdata::prelude::*;

#[packable]
struct Sample {
    frames: Vec<Array1<f32>>,
}

fn main() {}
