//! Codec throughput: encode and decode of a tabular and an image sample, and batch stacking.
//!
//! `cargo bench -p atdata-codec` (figures in docs/performance.md). Targets on one core: decode
//! at least 5M tabular samples/s and 5 GB/s of image samples, stack 2M samples/s.

use std::hint::black_box;

use atdata_codec::{Packable, SampleBatch};
use atdata_derive::packable;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array1, Array3};

/// The tabular sample of the targets.
#[packable(crate = "atdata_codec")]
#[derive(Clone)]
struct Tabular {
    features: Array1<f32>,
    label: i64,
    source: String,
}

/// The image sample of the targets.
#[packable(crate = "atdata_codec")]
#[derive(Clone)]
struct Image {
    image: Array3<f32>,
    label: String,
}

fn tabular() -> Tabular {
    Tabular {
        features: Array1::from_iter((0..128).map(|i| i as f32 * 0.5)),
        label: 42,
        source: "synthetic/benchmark".into(),
    }
}

fn image() -> Image {
    Image {
        image: Array3::from_shape_fn((224, 224, 3), |(y, x, c)| (y * 3 + x + c) as f32),
        label: "n01440764".into(),
    }
}

fn bench(c: &mut Criterion) {
    let t = tabular();
    let t_bytes = t.packed().expect("packs");
    let mut g = c.benchmark_group("tabular");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        let mut buf = Vec::with_capacity(t_bytes.len());
        b.iter(|| {
            buf.clear();
            black_box(&t).pack_into(&mut buf).expect("packs");
            black_box(buf.len())
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| Tabular::from_bytes(black_box(&t_bytes)).expect("decodes"))
    });
    g.finish();

    let img = image();
    let img_bytes = img.packed().expect("packs");
    let mut g = c.benchmark_group("image");
    g.throughput(Throughput::Bytes(img_bytes.len() as u64));
    g.bench_function("encode", |b| {
        let mut buf = Vec::with_capacity(img_bytes.len());
        b.iter(|| {
            buf.clear();
            black_box(&img).pack_into(&mut buf).expect("packs");
            black_box(buf.len())
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| Image::from_bytes(black_box(&img_bytes)).expect("decodes"))
    });
    // The ceiling for decode: copying the payload's bytes into a fresh buffer.
    g.bench_function("copy_baseline", |b| {
        b.iter(|| black_box(&img_bytes).to_vec())
    });
    g.finish();

    let rows: Vec<Tabular> = (0..32).map(|_| tabular()).collect();
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function("stack_32_tabular", |b| {
        b.iter_batched(
            || rows.clone(),
            |rows| SampleBatch::from_samples(rows).expect("stacks"),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
