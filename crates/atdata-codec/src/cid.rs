//! Content identifiers: CIDv1, dag-cbor codec, sha2-256, as Python atdata (libipld) makes them.

use cid::Cid;
use multihash::Multihash;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const DAG_CBOR: u64 = 0x71;
const SHA2_256: u64 = 0x12;

/// The CID of any DAG-CBOR-encodable value: CIDv1, codec dag-cbor, multihash sha2-256.
///
/// Map keys are sorted the DAG-CBOR way (shorter first, then bytewise), so field order does not
/// matter. Use `serde_bytes` for byte strings: a plain `Vec<u8>` encodes as a list.
///
/// ```
/// let cid = atdata_codec::cid_of(&std::collections::BTreeMap::<String, u8>::new()).unwrap();
/// assert!(cid.to_string().starts_with("bafyrei"));
/// ```
pub fn cid_of<T: Serialize + ?Sized>(value: &T) -> Result<Cid> {
    let bytes = serde_ipld_dagcbor::to_vec(value).map_err(|e| Error::Cid(e.to_string()))?;
    let digest = Sha256::digest(&bytes);
    let hash = Multihash::<64>::wrap(SHA2_256, &digest).map_err(|e| Error::Cid(e.to_string()))?;
    Ok(Cid::new_v1(DAG_CBOR, hash))
}

#[derive(Serialize)]
struct EntryIdentity<'a> {
    schema_ref: &'a str,
    data_urls: &'a [String],
}

/// The CID of a dataset entry: the CID of `{"schema_ref": ..., "data_urls": [...]}`.
///
/// The name and metadata do not take part, so the same URLs and schema under two names give
/// one CID; a brace pattern and its expansion give different ones.
///
/// ```
/// let cid = atdata_codec::entry_cid(
///     "atdata://local/schema/GoldenImage@1.0.0",
///     &["shards/golden_image-{000000..000001}.tar".to_string()],
/// ).unwrap();
/// assert_eq!(cid.to_string(), "bafyreidguopn2tyxrys5lpmlqgorvccrtz6devk3hievskv7pt5im4xrce");
/// ```
pub fn entry_cid(schema_ref: &str, data_urls: &[String]) -> Result<Cid> {
    cid_of(&EntryIdentity {
        schema_ref,
        data_urls,
    })
}
