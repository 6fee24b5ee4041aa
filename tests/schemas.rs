//! Schema records: Rust's text equals Python's for the same inputs, apart from the documented
//! corrections (the real dtype of array fields; descriptions from doc comments).

use atdata::prelude::*;
use atdata::{FieldType, Primitive, SchemaRecord, SchemaRefForm};
use serde_json::Value as Json;

use crate::golden::load;
use crate::samples::{GoldenImage, GoldenPoint};

const CREATED_AT: &str = "2025-01-02T03:04:05.678901+00:00";

fn publishes() -> Vec<Json> {
    load("schemas.json")["publishes"]
        .as_array()
        .unwrap()
        .clone()
}

fn publish(version: &str, name: &str) -> Json {
    publishes()
        .into_iter()
        .find(|p| p["stored_record"]["name"] == name && p["stored_record"]["version"] == version)
        .unwrap()
}

/// `publish_schema(T, version, description)`: an explicit description replaces the doc comment.
fn record<T: Packable>(version: &str, description: Option<&str>) -> SchemaRecord {
    let mut schema = T::schema();
    if let Some(d) = description {
        schema.description = Some(d.to_owned());
    }
    SchemaRecord::new(schema, version, CREATED_AT)
}

#[test]
fn golden_image_records_match_python_but_for_the_real_mask_dtype() {
    // Python writes float32 for every bare NDArray; the mask is really uint8.
    let correct = |text: &str| {
        text.replace(
            r#"{"name": "mask", "fieldType": {"$type": "local#ndarray", "dtype": "float32"}"#,
            r#"{"name": "mask", "fieldType": {"$type": "local#ndarray", "dtype": "uint8"}"#,
        )
    };
    let p = publish("1.0.0", "GoldenImage");
    let expected = correct(p["stored_json_text"].as_str().unwrap());
    assert_ne!(
        expected,
        p["stored_json_text"].as_str().unwrap(),
        "the correction applies"
    );
    assert_eq!(
        record::<GoldenImage>("1.0.0", Some("Golden image sample (explicit description)"))
            .to_json(),
        expected
    );

    // No explicit description: the doc comment, as Python takes the docstring.
    let p = publish("1.0.1", "GoldenImage");
    assert_eq!(
        record::<GoldenImage>("1.0.1", None).to_json(),
        correct(p["stored_json_text"].as_str().unwrap())
    );
}

#[test]
fn golden_point_record_matches_python_byte_for_byte() {
    let p = publish("2.0.0", "GoldenPoint");
    let text = record::<GoldenPoint>("2.0.0", Some("Golden point sample (explicit description)"))
        .to_json();
    assert_eq!(text, p["stored_json_text"].as_str().unwrap());
    // Undocumented: no description (Python writes the dataclass signature, which Rust has not).
    assert_eq!(GoldenPoint::schema().description, None);
    assert!(
        record::<GoldenPoint>("1.0.0", None)
            .to_json()
            .contains(r#""description": null"#)
    );
}

#[test]
fn python_records_parse_back_to_the_same_fields() {
    for p in publishes() {
        let text = p["stored_json_text"].as_str().unwrap();
        let r = SchemaRecord::from_json(text).unwrap();
        assert_eq!(r.to_json(), text, "{}", p["call"]);
        let parsed_ref: SchemaRef = p["returned_schema_ref"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            (parsed_ref.name(), parsed_ref.version()),
            (r.schema.name.as_str(), r.version.as_str())
        );
        assert_eq!(
            parsed_ref.format(SchemaRefForm::Python),
            p["returned_schema_ref"].as_str().unwrap()
        );
        assert_eq!(
            p["redis_key"].as_str().unwrap(),
            format!("LocalSchema:{}@{}", parsed_ref.name(), parsed_ref.version())
        );
    }
    let auto = &load("schemas.json")["auto_stored_by_insert"];
    let text = auto["stored_json_text"].as_str().unwrap();
    assert_eq!(SchemaRecord::from_json(text).unwrap().to_json(), text);
}

/// `field_type_mapping`: the Rust field types that correspond to each Python annotation.
#[test]
fn field_types_map_as_python_maps_them() {
    #[packable]
    struct Zoo {
        a_int: i32,
        a_float: f32,
        a_str: String,
        a_bytes: Vec<u8>,
        a_bool: bool,
        a_opt_int: Option<i64>,
        a_opt_str: Option<String>,
        a_list_int: Vec<u64>,
        a_opt_list_str: Option<Vec<String>>,
        a_array: atdata::ndarray::ArrayD<f32>,
        a_opt_u8: Option<atdata::ndarray::Array1<u8>>,
    }
    let mapping = load("schemas.json")["field_type_mapping"]
        .as_array()
        .unwrap()
        .clone();
    let expected: Vec<(&str, &str)> = vec![
        ("a_int", "int"),
        ("a_float", "float"),
        ("a_str", "str"),
        ("a_bytes", "bytes"),
        ("a_bool", "bool"),
        ("a_opt_int", "int | None"),
        ("a_opt_str", "typing.Optional[str]"),
        ("a_list_int", "list[int]"),
        ("a_opt_list_str", "list[str] | None"),
        ("a_array", "NDArray[np.float32]"),
        ("a_opt_u8", "NDArray[np.uint8] | None"),
    ];
    let schema = Zoo::schema();
    for (field, annotation) in expected {
        let golden = mapping
            .iter()
            .find(|m| m["annotation"] == annotation)
            .unwrap()["field"]
            .clone();
        let ours = schema.field(field).unwrap();
        let ours = serde_json::json!({"name": "f", "fieldType": ours.field_type, "optional": ours.optional});
        assert_eq!(ours, golden, "{field} vs {annotation}");
    }
    assert_eq!(
        schema.field("a_int").unwrap().field_type,
        FieldType::Primitive(Primitive::Int)
    );
}
