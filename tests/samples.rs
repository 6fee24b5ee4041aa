//! Every golden sample through `#[packable]` types and `DynamicSample`, and batches grouped
//! as `dataset_reads` records them.

use atdata::ndarray::{Array1, Array2};
use atdata::prelude::*;
use atdata::{Error, SchemaRecord};
use serde_json::Value as Json;

use crate::golden::{load, strings, strip_annotations, tagged, unhex};

/// A small image with a label (shared golden set).
#[packable]
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenImage {
    pub image: Array2<f32>,
    pub label: String,
    pub index: i64,
    pub score: f64,
    pub is_valid: bool,
    pub tags: Vec<String>,
    pub mask: Option<Array2<u8>>,
    pub thumbnail: Vec<u8>,
    pub note: Option<String>,
}

#[packable]
#[derive(Debug, Clone, PartialEq)]
pub struct GoldenPoint {
    pub x: f64,
    pub y: f64,
    pub name: String,
    pub embedding: Array1<f32>,
    pub weights: Array1<f64>,
}

fn golden_samples() -> Vec<Json> {
    let samples = load("samples.json")["samples"]
        .as_array()
        .expect("samples")
        .clone();
    assert_eq!(samples.len(), 9, "golden samples.json changed");
    samples
}

/// Python's stored schema record for a golden type (the one `publish_schema` wrote).
pub fn python_record(type_name: &str) -> SchemaRecord {
    let schemas = load("schemas.json");
    let publish = schemas["publishes"]
        .as_array()
        .expect("publishes")
        .iter()
        .find(|p| p["stored_record"]["name"] == type_name)
        .unwrap_or_else(|| panic!("no golden record for {type_name}"));
    SchemaRecord::from_json(publish["stored_json_text"].as_str().expect("text"))
        .expect("golden record parses")
}

fn repack_typed<T: Packable>(bytes: &[u8]) -> Vec<u8> {
    let sample = T::from_bytes(bytes).unwrap_or_else(|e| panic!("typed decode: {e}"));
    sample.packed().expect("repack")
}

#[test]
fn every_golden_sample_round_trips_through_its_packable_type() {
    for s in golden_samples() {
        let bytes = unhex(&s["msgpack_hex"]);
        let repacked = match s["type"].as_str() {
            Some("GoldenImage") => repack_typed::<GoldenImage>(&bytes),
            Some("GoldenPoint") => repack_typed::<GoldenPoint>(&bytes),
            other => panic!("unknown golden type {other:?}"),
        };
        assert_eq!(
            hex::encode(repacked),
            s["msgpack_hex"].as_str().unwrap(),
            "sample {}",
            s["key"]
        );
    }
}

#[test]
fn typed_fields_hold_the_golden_values() {
    for s in golden_samples()
        .iter()
        .filter(|s| s["type"] == "GoldenImage")
    {
        let img = GoldenImage::from_bytes(&unhex(&s["msgpack_hex"])).unwrap();
        let f = &s["fields"];
        let image: Vec<f64> = img.image.iter().map(|&v| f64::from(v)).collect();
        assert_eq!(serde_json::json!(image), f["image"]["values"]);
        assert_eq!(img.image.shape(), &[2, 3]);
        assert_eq!(img.label, f["label"]["value"].as_str().unwrap());
        assert_eq!(img.index, f["index"]["value"].as_i64().unwrap());
        assert_eq!(img.score, f["score"]["value"].as_f64().unwrap());
        assert_eq!(img.is_valid, f["is_valid"]["value"].as_bool().unwrap());
        let tags: Vec<&str> = f["tags"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["value"].as_str().unwrap())
            .collect();
        assert_eq!(img.tags, tags);
        assert_eq!(
            hex::encode(&img.thumbnail),
            f["thumbnail"]["hex"].as_str().unwrap()
        );
        assert_eq!(img.note.as_deref(), f["note"]["value"].as_str());
        match &img.mask {
            Some(mask) => assert_eq!(
                serde_json::json!(mask.iter().collect::<Vec<_>>()),
                f["mask"]["values"]
            ),
            None => assert_eq!(f["mask"]["type"], "none"),
        }
    }
    for s in golden_samples()
        .iter()
        .filter(|s| s["type"] == "GoldenPoint")
    {
        let p = GoldenPoint::from_bytes(&unhex(&s["msgpack_hex"])).unwrap();
        let f = &s["fields"];
        assert_eq!(p.x, f["x"]["value"].as_f64().unwrap());
        assert_eq!(p.y, f["y"]["value"].as_f64().unwrap());
        assert_eq!(p.name, f["name"]["value"].as_str().unwrap());
        // `weights` is annotated NDArray[np.float64]: upstream leaves it as bytes; we decode it.
        assert_eq!(
            serde_json::json!(p.weights.to_vec()),
            f["weights"]["values"]
        );
        let embedding: Vec<f64> = p.embedding.iter().map(|&v| f64::from(v)).collect();
        assert_eq!(serde_json::json!(embedding), f["embedding"]["values"]);
    }
}

#[test]
fn every_golden_sample_decodes_dynamically_by_pythons_schema_and_repacks_identically() {
    for s in golden_samples() {
        let record = python_record(s["type"].as_str().unwrap());
        let bytes = unhex(&s["msgpack_hex"]);
        let dynamic = DynamicSample::from_bytes(&record.schema, &bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", s["key"]));
        let keys: Vec<&str> = dynamic.fields().map(|(k, _)| k).collect();
        let order = strings(&s["map_key_order"]);
        assert_eq!(keys, order);
        for (name, value) in dynamic.fields() {
            assert_eq!(
                tagged(value),
                strip_annotations(&s["fields"][name]),
                "sample {} field {name}",
                s["key"]
            );
        }
        assert_eq!(dynamic.packed().unwrap(), bytes, "sample {}", s["key"]);
    }
}

/// `dataset_reads.ordered_batch_size_2`, over the golden samples in key order, with our
/// documented corrections: optional arrays batch as lists of optionals (upstream raises) and
/// annotated arrays (`weights`) stack as arrays (upstream leaves bytes).
#[test]
fn batches_group_as_python_batches_them() {
    let reads = load("samples.json")["dataset_reads"].clone();
    let samples = golden_samples();
    let image_payloads: Vec<Vec<u8>> = samples
        .iter()
        .filter(|s| s["type"] == "GoldenImage")
        .map(|s| unhex(&s["msgpack_hex"]))
        .collect();
    let images: Vec<GoldenImage> = image_payloads
        .iter()
        .map(|b| GoldenImage::from_bytes(b).unwrap())
        .collect();
    let expected = reads["GoldenImage"]["ordered_batch_size_2"]
        .as_array()
        .unwrap();
    let batches: Vec<_> = images
        .chunks(2)
        .map(|c| SampleBatch::from_samples(c.to_vec()).unwrap())
        .collect();
    assert_eq!(batches.len(), expected.len());
    for ((batch, exp), chunk) in batches.iter().zip(expected).zip(images.chunks(2)) {
        let size = exp["size"].as_u64().unwrap() as usize;
        assert_eq!(batch.len(), size);
        let f = &exp["fields"];
        assert_eq!(f["image"]["kind"], "stacked_ndarray");
        assert_eq!(serde_json::json!(batch.image.shape()), f["image"]["shape"]);
        for (name, len) in [
            ("label", batch.label.len()),
            ("index", batch.index.len()),
            ("score", batch.score.len()),
            ("is_valid", batch.is_valid.len()),
            ("tags", batch.tags.len()),
            ("thumbnail", batch.thumbnail.len()),
            ("note", batch.note.len()),
        ] {
            assert_eq!(f[name]["kind"], "list", "{name}");
            assert_eq!(f[name]["len"].as_u64().unwrap() as usize, len, "{name}");
        }
        let notes: Vec<&str> = batch
            .note
            .iter()
            .map(|n| if n.is_some() { "str" } else { "NoneType" })
            .collect();
        assert_eq!(serde_json::json!(notes), f["note"]["element_types"]);
        assert_eq!(batch.mask.len(), size);
        assert_eq!(batch.samples(), chunk);
    }
    assert_eq!(batches[0].label, vec!["img_0", "img_1"]);
    assert_eq!(
        batches[2].mask[0].as_ref().map(|m| m.shape().to_vec()),
        Some(vec![2, 3])
    );

    let points: Vec<GoldenPoint> = samples
        .iter()
        .filter(|s| s["type"] == "GoldenPoint")
        .map(|s| GoldenPoint::from_bytes(&unhex(&s["msgpack_hex"])).unwrap())
        .collect();
    let expected = reads["GoldenPoint"]["ordered_batch_size_2"]
        .as_array()
        .unwrap();
    for (chunk, exp) in points.chunks(2).zip(expected) {
        let batch = SampleBatch::from_samples(chunk.to_vec()).unwrap();
        assert_eq!(
            serde_json::json!(batch.embedding.shape()),
            exp["fields"]["embedding"]["shape"]
        );
        assert_eq!(batch.weights.shape(), &[2, 2]);
        assert_eq!(
            batch.x.len(),
            exp["fields"]["x"]["len"].as_u64().unwrap() as usize
        );
    }
}

#[test]
fn stacking_different_shapes_names_the_field() {
    let a = GoldenPoint {
        x: 0.0,
        y: 0.0,
        name: "a".into(),
        embedding: Array1::zeros(4),
        weights: Array1::zeros(2),
    };
    let mut b = a.clone();
    b.embedding = Array1::zeros(5);
    let err = SampleBatch::from_samples(vec![a, b]).unwrap_err();
    assert!(
        matches!(&err, Error::Field { field, .. } if field == "embedding"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "field `embedding`: cannot stack arrays: sample 1 has shape [5], sample 0 has [4]"
    );
    assert!(matches!(
        SampleBatch::<GoldenPoint>::from_samples(vec![]),
        Err(Error::EmptyBatch)
    ));
}

#[test]
fn bad_payloads_are_typed_errors_naming_the_problem() {
    let good = load("samples.json")["samples"][5]["msgpack_hex"].clone();
    let good = unhex(&good);
    // Every truncation fails cleanly.
    for cut in 0..good.len() {
        assert!(
            GoldenPoint::from_bytes(&good[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        GoldenPoint::from_bytes(&trailing),
        Err(Error::TrailingBytes { count: 1 })
    ));

    // {"x": 1.0} alone: missing fields.
    let err =
        GoldenPoint::from_bytes(&hex::decode("81a178cb3ff0000000000000").unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "missing field `y` for GoldenPoint");
    // An extra key.
    let mut extra = good.clone();
    extra[0] += 1;
    extra.extend_from_slice(&hex::decode("a17a00").unwrap());
    let err = GoldenPoint::from_bytes(&extra).unwrap_err();
    assert_eq!(err.to_string(), "unknown field `z` for GoldenPoint");
    // A repeated key.
    let dup = hex::decode("82a178cb3ff0000000000000a178cb3ff0000000000000").unwrap();
    assert_eq!(
        GoldenPoint::from_bytes(&dup).unwrap_err().to_string(),
        "duplicate field `x`"
    );
    // A value of the wrong kind.
    let wrong = hex::decode("81a178a3616263").unwrap();
    assert_eq!(
        GoldenPoint::from_bytes(&wrong).unwrap_err().to_string(),
        "field `x`: expected float, found str"
    );
    // Not a map at all.
    assert_eq!(
        GoldenPoint::from_bytes(&[0x93, 1, 2, 3])
            .unwrap_err()
            .to_string(),
        "expected map, found array"
    );
    // A corrupt array payload inside a valid map.
    let s = GoldenImage::from_bytes(&unhex(&load("samples.json")["samples"][0]["msgpack_hex"]))
        .unwrap();
    let mut bytes = s.packed().unwrap();
    let at = bytes.windows(3).position(|w| w == b"<f4").unwrap();
    bytes[at + 2] = b'8';
    let err = GoldenImage::from_bytes(&bytes).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "field `image`: shape [2, 3] of dtype `<f8` needs 48 data bytes, found 24"
        ),
        "{err}"
    );
}

#[test]
fn integers_out_of_range_for_the_field_are_errors() {
    #[packable]
    #[derive(Debug)]
    struct Small {
        v: u8,
    }
    assert_eq!(
        Small::from_bytes(&[0x81, 0xa1, b'v', 0xcc, 0xff])
            .unwrap()
            .v,
        255
    );
    let err = Small::from_bytes(&[0x81, 0xa1, b'v', 0xcd, 0x01, 0x00]).unwrap_err();
    assert_eq!(err.to_string(), "field `v`: integer 256 does not fit in u8");
    let err = Small::from_bytes(&[0x81, 0xa1, b'v', 0xff]).unwrap_err();
    assert_eq!(err.to_string(), "field `v`: integer -1 does not fit in u8");
}

#[test]
fn dynamic_samples_check_values_against_the_schema() {
    let record = python_record("GoldenPoint");
    let good = unhex(&load("samples.json")["samples"][5]["msgpack_hex"]);
    let err = DynamicSample::from_bytes(&record.schema, &good[..good.len() - 1]).unwrap_err();
    assert!(err.to_string().starts_with("field `weights`"), "{err}");
    let wrong = hex::decode("81a178a3616263").unwrap();
    let err = DynamicSample::from_bytes(&record.schema, &wrong).unwrap_err();
    assert_eq!(err.to_string(), "field `x`: expected float, found str");
    let nil = hex::decode("81a178c0").unwrap();
    let err = DynamicSample::from_bytes(&record.schema, &nil).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `x`: expected a value (the field is not optional), found nil"
    );
    let missing = hex::decode("81a178cb3ff0000000000000").unwrap();
    let err = DynamicSample::from_bytes(&record.schema, &missing).unwrap_err();
    assert_eq!(err.to_string(), "missing field `y` for GoldenPoint");
}
