//! The new fuzz targets' properties (`fuzz/checks.rs`) run over their committed seeds
//! (`fuzz/seeds/`) and the golden payloads, in every test run; the fuzzer itself runs apart
//! (`docs/performance.md`, Fuzzing).

#[path = "../fuzz/checks.rs"]
mod checks;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 4, "{target} has {} seeds", out.len());
    out
}

#[test]
fn brace_expansion_seeds_hold_the_fuzz_properties() {
    for (name, seed) in seeds("brace_expansion") {
        eprintln!("{name}");
        checks::brace_expansion(&seed);
    }
}

#[test]
fn schema_inference_seeds_and_golden_payloads_hold_the_fuzz_properties() {
    for (name, seed) in seeds("schema_inference") {
        eprintln!("{name}");
        checks::schema_inference(&seed);
    }
    let samples = crate::golden::load("samples.json");
    let mut payloads = 0;
    for sample in samples["samples"].as_array().unwrap() {
        checks::schema_inference(&crate::golden::unhex(&sample["msgpack_hex"]));
        payloads += 1;
    }
    assert_eq!(payloads, 9);
}

#[test]
fn batch_columns_seeds_hold_the_fuzz_properties() {
    for (name, seed) in seeds("batch_columns") {
        // Every seed has rows that decode (and headers that repeat), most also ones that fail.
        assert!(checks::batch_columns(&seed) >= 2, "{name}");
    }
}
