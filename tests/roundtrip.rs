//! Property tests: arbitrary samples and arrays of every dtype and rank round-trip exactly, the
//! dynamic and typed views agree, and no truncation or corruption panics.

use atdata::ndarray::{Array1, Array2, ArrayD, IxDyn};
use atdata::prelude::*;
use atdata::{ArrayPayload, decode_array, encode_array};
use half::f16;
use num_complex::{Complex32, Complex64};
use proptest::prelude::*;

#[packable]
#[derive(Debug, Clone, PartialEq)]
struct Everything {
    flag: bool,
    i8_: i8,
    i16_: i16,
    i32_: i32,
    i64_: i64,
    u8_: u8,
    u16_: u16,
    u32_: u32,
    u64_: u64,
    f32_: f32,
    f64_: f64,
    text: String,
    blob: Vec<u8>,
    ints: Vec<i32>,
    nested: Vec<Vec<String>>,
    blobs: Vec<Vec<u8>>,
    maybe_text: Option<String>,
    maybe_array: Option<Array2<f64>>,
    vector: Array1<u16>,
    tensor: ArrayD<i8>,
    r#type: String,
}

fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..4, 0..=4)
}

fn array<T: std::fmt::Debug + Clone + 'static>(
    elem: impl Strategy<Value = T> + Clone + 'static,
) -> impl Strategy<Value = ArrayD<T>> {
    shape().prop_flat_map(move |s| {
        let n = s.iter().product::<usize>();
        prop::collection::vec(elem.clone(), n)
            .prop_map(move |v| ArrayD::from_shape_vec(IxDyn(&s), v).expect("shape matches"))
    })
}

fn everything() -> impl Strategy<Value = Everything> {
    (
        (
            any::<bool>(),
            any::<i8>(),
            any::<i16>(),
            any::<i32>(),
            any::<i64>(),
            any::<u8>(),
            any::<u16>(),
            any::<u32>(),
            any::<u64>(),
        ),
        (
            any::<f32>(),
            any::<f64>(),
            ".*",
            prop::collection::vec(any::<u8>(), 0..300),
        ),
        (
            prop::collection::vec(any::<i32>(), 0..20),
            prop::collection::vec(prop::collection::vec("[a-z]{0,40}", 0..3), 0..3),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..4), 0..3),
            prop::option::of(".*"),
        ),
        (
            prop::option::of((0usize..3, 0usize..3).prop_flat_map(|(r, c)| {
                prop::collection::vec(any::<f64>(), r * c)
                    .prop_map(move |v| Array2::from_shape_vec((r, c), v).expect("shape"))
            })),
            prop::collection::vec(any::<u16>(), 0..10).prop_map(Array1::from_vec),
            array(any::<i8>()),
            "\\PC*",
        ),
    )
        .prop_map(
            |(
                (flag, i8_, i16_, i32_, i64_, u8_, u16_, u32_, u64_),
                (f32_, f64_, text, blob),
                (ints, nested, blobs, maybe_text),
                (maybe_array, vector, tensor, ty),
            )| Everything {
                flag,
                i8_,
                i16_,
                i32_,
                i64_,
                u8_,
                u16_,
                u32_,
                u64_,
                f32_,
                f64_,
                text,
                blob,
                ints,
                nested,
                blobs,
                maybe_text,
                maybe_array,
                vector,
                tensor,
                r#type: ty,
            },
        )
}

/// Byte-level equality, which treats NaNs with the same bits as equal.
fn same_bytes(a: &Everything, b: &Everything) -> bool {
    a.packed().unwrap() == b.packed().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn samples_round_trip(s in everything()) {
        let bytes = s.packed().unwrap();
        let back = Everything::from_bytes(&bytes).unwrap();
        prop_assert!(same_bytes(&s, &back));
        prop_assert_eq!(back.packed().unwrap(), bytes);
    }

    #[test]
    fn dynamic_samples_repack_typed_payloads_identically(s in everything()) {
        let bytes = s.packed().unwrap();
        let dynamic = DynamicSample::from_bytes(&Everything::schema(), &bytes).unwrap();
        prop_assert_eq!(dynamic.packed().unwrap(), bytes);
        prop_assert_eq!(dynamic.get("type").and_then(|v| v.as_str()), Some(s.r#type.as_str()));
    }

    #[test]
    fn truncated_or_corrupted_samples_never_panic(s in everything(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let bytes = s.packed().unwrap();
        let cut = cut.index(bytes.len());
        prop_assert!(Everything::from_bytes(&bytes[..cut]).is_err());
        let mut corrupt = bytes.clone();
        let at = flip.0.index(corrupt.len());
        corrupt[at] ^= flip.1.max(1);
        // May decode (a flipped value byte) or fail, but never panics.
        let _ = Everything::from_bytes(&corrupt);
        let _ = DynamicSample::from_bytes(&Everything::schema(), &corrupt);
    }
}

macro_rules! array_round_trip {
    ($($name:ident: $t:ty => $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            $(
                #[test]
                fn $name(a in array::<$t>($strategy)) {
                    let bytes = encode_array(&a).unwrap();
                    let back: ArrayD<$t> = decode_array(&bytes).unwrap();
                    prop_assert_eq!(back.shape(), a.shape());
                    prop_assert_eq!(encode_array(&back).unwrap(), bytes.clone());
                    let payload = ArrayPayload::from_bytes(bytes.clone()).unwrap();
                    prop_assert_eq!(payload.shape(), a.shape());
                    prop_assert_eq!(payload.dtype().as_str(), <$t as atdata::Element>::DTYPE);
                    for cut in 0..bytes.len() {
                        prop_assert!(ArrayPayload::from_bytes(bytes[..cut].to_vec()).is_err());
                    }
                }
            )*
        }
    };
}

array_round_trip! {
    arrays_of_bool: bool => any::<bool>();
    arrays_of_i8: i8 => any::<i8>();
    arrays_of_i16: i16 => any::<i16>();
    arrays_of_i32: i32 => any::<i32>();
    arrays_of_i64: i64 => any::<i64>();
    arrays_of_u8: u8 => any::<u8>();
    arrays_of_u16: u16 => any::<u16>();
    arrays_of_u32: u32 => any::<u32>();
    arrays_of_u64: u64 => any::<u64>();
    arrays_of_f16: f16 => any::<u16>().prop_map(f16::from_bits);
    arrays_of_f32: f32 => any::<f32>();
    arrays_of_f64: f64 => any::<f64>();
    arrays_of_c64: Complex32 => (any::<f32>(), any::<f32>()).prop_map(|(r, i)| Complex32::new(r, i));
    arrays_of_c128: Complex64 => (any::<f64>(), any::<f64>()).prop_map(|(r, i)| Complex64::new(r, i));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_array_decoder(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = ArrayPayload::from_bytes(bytes.clone());
        let _ = decode_array::<f32, IxDyn>(&bytes);
    }

    #[test]
    fn big_endian_payloads_decode_to_the_same_values(v in prop::collection::vec(any::<i32>(), 0..16)) {
        let mut payload = b"\x03>i4\x01".to_vec();
        payload.extend_from_slice(&(v.len() as i64).to_le_bytes());
        for x in &v {
            payload.extend_from_slice(&x.to_be_bytes());
        }
        let a: Array1<i32> = decode_array(&payload).unwrap();
        prop_assert_eq!(a.to_vec(), v);
    }
}
