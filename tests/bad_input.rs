//! The bad-input suite (issue 10): a table of hostile or broken inputs across every reader and
//! writer (shards, payloads, arrays, patterns, schemas, index rows, URLs, credentials,
//! configurations). Each case asserts a typed error and that nothing was written; the cases
//! where size matters measure peak memory in a child process (tests share a process).
//! `docs/bad-input.md` lists the table; a test keeps the two in step.

use std::io::Read;
use std::path::Path;

use atdata::StoreOpener;
use atdata::index::Error as IndexError;
use atdata::prelude::*;
use atdata::wds::{Error as WdsError, ShardFacts, TarReader, TarWriter, expand_urls};
use atdata::{ArrayError, Error as CodecError, SchemaRecord, WdsSample, json_to_msgpack};
use futures::StreamExt;
use serde_json::json;

/// A row of the suite: what goes in, the typed error that must come out, and the check.
struct Case {
    area: &'static str,
    input: &'static str,
    error: &'static str,
    check: fn(&Path) -> Result<(), String>,
}

/// `Ok` when `$e` matches `$p`, else a description of what came instead.
macro_rules! expect {
    ($e:expr, $p:pat) => {
        match $e {
            Err($p) => Ok(()),
            other => Err(format!("got {other:?}")),
        }
    };
}

#[packable]
#[derive(Debug)]
struct Row {
    id: i32,
    text: String,
}

fn tar_of(samples: &[WdsSample]) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    for s in samples {
        w.write(s).unwrap();
    }
    w.finish().unwrap()
}

fn one_row() -> Vec<u8> {
    tar_of(&[Row {
        id: 1,
        text: "a".into(),
    }
    .as_wds("k")])
}

/// A raw ustar header for `name` claiming `size` bytes, with type `kind`.
fn header(name: &str, size: u64, kind: u8) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// A PAX header holding `record`, then a good sample.
fn pax_then_row(record: &[u8]) -> Vec<u8> {
    let mut bytes = header("././@PaxHeader", record.len() as u64, b'x');
    bytes.extend_from_slice(record);
    bytes.resize(1024, 0);
    bytes.extend(one_row());
    bytes
}

/// The first error the reader yields; `Ok` when it yields none.
fn first_error(bytes: Vec<u8>) -> Result<(), WdsError> {
    TarReader::new(std::io::Cursor::new(bytes), "bad.tar")
        .find_map(Result::err)
        .map_or(Ok(()), Err)
}

/// A one-row shard in `dir`, read through a cache in `dir/cache` told `checksum` for it.
fn cached_one_row(
    dir: &Path,
    checksum: &str,
) -> (
    atdata::wds::ShardCache,
    atdata::wds::Dataset<Row, atdata::wds::CachedOpener<atdata::wds::LocalOpener>>,
) {
    let shard = dir.join("a.tar");
    std::fs::write(&shard, one_row()).unwrap();
    let cache = atdata::wds::ShardCache::new(dir.join("cache"), 1 << 30).unwrap();
    let url = shard.to_str().unwrap().to_owned();
    let opener = atdata::wds::CachedOpener::new(
        atdata::wds::LocalOpener,
        cache.clone(),
        [(url.clone(), checksum.to_owned())],
    );
    let ds = atdata::wds::Dataset::<Row>::new(&url)
        .unwrap()
        .with_opener(opener);
    (cache, ds)
}

/// A payload decoded as `Row`.
fn row_from(payload: serde_json::Value) -> Result<Row, CodecError> {
    Row::from_bytes(&json_to_msgpack(&payload).unwrap())
}

fn raw_row(bytes: &[u8]) -> Result<Row, CodecError> {
    Row::from_bytes(bytes)
}

fn array(bytes: &[u8]) -> Result<ndarray::ArrayD<f32>, ArrayError> {
    atdata::decode_array::<f32, ndarray::IxDyn>(bytes)
}

/// A compact NDArray payload with a hand-written header.
pub(crate) fn array_payload(dtype: &str, shape: &[i64], data: &[u8]) -> Vec<u8> {
    let mut out = vec![dtype.len() as u8];
    out.extend_from_slice(dtype.as_bytes());
    out.push(shape.len() as u8);
    for d in shape {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[allow(clippy::result_large_err)] // the store's error, as its callers get it
fn credentials(pairs: &[(&str, &str)]) -> Result<Credentials, atdata::store::Error> {
    let mut all = vec![
        ("AWS_ACCESS_KEY_ID", "key"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ];
    all.extend_from_slice(pairs);
    Credentials::from_map(all)
}

/// `Ok` when credentials with `pairs` added are refused as credentials.
fn refused(pairs: &[(&str, &str)]) -> Result<(), String> {
    expect!(credentials(pairs), atdata::store::Error::Credentials(_))
}

/// A list nested `depth` deep around an int.
fn nested_type(depth: usize) -> atdata::FieldType {
    let mut t = atdata::FieldType::Primitive(atdata::Primitive::Int);
    for _ in 0..depth {
        t = atdata::FieldType::Array { items: Box::new(t) };
    }
    t
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A SQLite index in `dir` with one good entry, and raw access to break it.
fn sqlite_index(dir: &Path) -> (LocalIndex, rusqlite::Connection) {
    let path = dir.join("index.db");
    let index = rt().block_on(async {
        let index = LocalIndex::open_sqlite(&path).await.unwrap();
        let ds = Dataset::<Row>::new("good.tar").unwrap();
        index.add_entry(&ds, "good", None, None).await.unwrap();
        index
    });
    (index, rusqlite::Connection::open(&path).unwrap())
}

/// Whether nothing but the SQLite file was written in `dir`.
fn only_index_in(dir: &Path) -> Result<(), String> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("index.db"))
        .collect();
    if names.is_empty() {
        Ok(())
    } else {
        Err(format!("written: {names:?}"))
    }
}

/// A two-row shard `two.tar` in `dir`, with its sidecar `two.idx`.
fn two_row_shard(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("two.tar");
    let mut w = TarWriter::create(&path).unwrap();
    for id in 0..2 {
        w.write(
            &Row {
                id,
                text: "a".into(),
            }
            .as_wds(&format!("{id:06}")),
        )
        .unwrap();
    }
    w.finish().unwrap().close().unwrap();
    path
}

/// `get(index)` of a two-row shard in `dir` whose sidecar is replaced by `sidecar`.
fn get_with_sidecar(dir: &Path, sidecar: &str, index: usize) -> atdata::wds::Result<Row> {
    let path = two_row_shard(dir);
    std::fs::write(dir.join("two.idx"), sidecar).unwrap();
    Dataset::<Row>::new(path.to_str().unwrap())
        .unwrap()
        .get(index)
}

/// A loader over a two-row shard in `dir` (global batch 2) resuming from its own fresh state
/// with `edit` applied to the state's JSON.
fn resume_edited(dir: &Path, edit: fn(String) -> String) -> atdata::wds::Result<()> {
    let ds = Dataset::<Row>::new(two_row_shard(dir)).unwrap();
    let options = LoaderOptions {
        global_batch: 2,
        ..Default::default()
    };
    let state = serde_json::to_string(&ds.loader(options.clone())?.state()).unwrap();
    let state = serde_json::from_str(&edit(state)).unwrap();
    ds.loader(LoaderOptions {
        resume: Some(state),
        ..options
    })
    .map(drop)
}

const CASES: &[Case] = &[
    // ---------------------------------------------------------------- shards
    Case {
        area: "shard",
        input: "a header cut off after 100 bytes",
        error: "wds::Error::Truncated",
        check: |_| {
            let mut bytes = one_row();
            bytes.truncate(100);
            expect!(first_error(bytes), WdsError::Truncated { .. })
        },
    },
    Case {
        area: "shard",
        input: "member data cut off",
        error: "wds::Error::Truncated naming the member",
        check: |_| {
            let mut bytes = one_row();
            bytes.truncate(520);
            expect!(
                first_error(bytes),
                WdsError::Truncated {
                    member: Some(_),
                    ..
                }
            )
        },
    },
    Case {
        area: "shard",
        input: "no end-of-archive marker",
        error: "wds::Error::Truncated",
        check: |_| {
            let bytes = one_row();
            let data_end = 512 + 512;
            expect!(
                first_error(bytes[..data_end].to_vec()),
                WdsError::Truncated { .. }
            )
        },
    },
    Case {
        area: "shard",
        input: "an empty file",
        error: "wds::Error::Truncated",
        check: |_| expect!(first_error(Vec::new()), WdsError::Truncated { .. }),
    },
    Case {
        area: "shard",
        input: "a header whose checksum is wrong",
        error: "wds::Error::CorruptHeader",
        check: |_| {
            let mut bytes = one_row();
            bytes[0] ^= 0x20;
            expect!(first_error(bytes), WdsError::CorruptHeader { .. })
        },
    },
    Case {
        area: "shard",
        input: "a size field that is not octal",
        error: "wds::Error::CorruptHeader",
        check: |_| {
            let mut h = header("k.msgpack", 1, b'0');
            h[124..135].copy_from_slice(b"zzzzzzzzzzz");
            let mut t = tar::Header::from_byte_slice(&h).clone();
            t.set_cksum();
            let mut bytes = t.as_bytes().to_vec();
            bytes.extend(vec![0u8; 2048]);
            expect!(first_error(bytes), WdsError::CorruptHeader { .. })
        },
    },
    Case {
        area: "shard",
        input: "a PAX record whose length is shorter than its prefix",
        error: "wds::Error::CorruptHeader",
        check: |_| {
            expect!(
                first_error(pax_then_row(b"1 path=x\n")),
                WdsError::CorruptHeader { .. }
            )
        },
    },
    Case {
        area: "shard",
        input: "a PAX size that is not a number",
        error: "wds::Error::CorruptHeader",
        check: |_| {
            expect!(
                first_error(pax_then_row(b"13 size=abc\n")),
                WdsError::CorruptHeader { .. }
            )
        },
    },
    Case {
        area: "shard",
        input: "a PAX header claiming 8 GiB",
        error: "wds::Error::MemberOverLimit, before reading",
        check: |_| {
            let mut bytes = header("././@PaxHeader", 8 << 30, b'x');
            bytes.resize(4096, 0);
            expect!(first_error(bytes), WdsError::MemberOverLimit { .. })
        },
    },
    Case {
        area: "shard",
        input: "a GNU long name claiming 4 GiB",
        error: "wds::Error::MemberOverLimit",
        check: |_| {
            let mut bytes = header("././@LongLink", 4 << 30, b'L');
            bytes.resize(4096, 0);
            expect!(first_error(bytes), WdsError::MemberOverLimit { .. })
        },
    },
    Case {
        area: "shard",
        input: "a member header claiming 8 GiB over a short stream",
        error: "wds::Error::MemberOverLimit (default limit 1 GiB), before reading",
        check: |_| {
            let mut bytes = header("k.msgpack", (8 << 30) - 1, b'0');
            bytes.resize(4096, 0);
            expect!(first_error(bytes), WdsError::MemberOverLimit { .. })
        },
    },
    Case {
        area: "shard",
        input: "a member over a reader's own limit",
        error: "wds::Error::MemberOverLimit",
        check: |_| {
            let reader =
                TarReader::new(std::io::Cursor::new(one_row()), "s.tar").with_max_member_bytes(4);
            let first = reader.into_iter().next().unwrap();
            expect!(first, WdsError::MemberOverLimit { limit: 4, .. })
        },
    },
    Case {
        area: "shard",
        input: "two `msgpack` members in one sample",
        error: "wds::Error::DuplicateMember",
        check: |_| {
            let mut bytes = header("k.msgpack", 1, b'0');
            bytes.resize(1024, 0);
            bytes.extend(header("k.msgpack", 1, b'0'));
            bytes.resize(2048, 0);
            bytes.resize(2048 + 1024, 0);
            expect!(first_error(bytes), WdsError::DuplicateMember { .. })
        },
    },
    Case {
        area: "shard",
        input: "a member named by the bare key (no extension)",
        error: "wds::Error::MissingMember (msgpack) on a typed read",
        check: |dir| {
            let mut bytes = header("k", 1, b'0');
            bytes.resize(1024, 0);
            bytes.resize(1024 + 1024, 0);
            let path = dir.join("bare.tar");
            std::fs::write(&path, bytes).unwrap();
            let ds = Dataset::<Row>::new(path.to_str().unwrap()).unwrap();
            expect!(
                ds.samples().unwrap().next().unwrap(),
                WdsError::MissingMember { .. }
            )
        },
    },
    Case {
        area: "shard",
        input: "a sample with only a `json` member",
        error: "wds::Error::MissingMember (msgpack)",
        check: |dir| {
            let path = dir.join("json.tar");
            std::fs::write(
                &path,
                tar_of(&[WdsSample {
                    key: "k".into(),
                    members: vec![("json".into(), b"{}".to_vec())],
                }]),
            )
            .unwrap();
            let ds = Dataset::<Row>::new(path.to_str().unwrap()).unwrap();
            expect!(
                ds.samples().unwrap().next().unwrap(),
                WdsError::MissingMember { .. }
            )
        },
    },
    Case {
        area: "shard",
        input: "gzip magic followed by garbage",
        error: "wds::Error::Io naming the shard",
        check: |_| {
            expect!(
                first_error(vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad]),
                WdsError::Io { .. } | WdsError::Truncated { .. }
            )
        },
    },
    Case {
        area: "shard",
        input: "a missing shard file",
        error: "wds::Error::Io naming the path",
        check: |dir| {
            let path = dir.join("nothing.tar");
            let ds = Dataset::<Row>::new(path.to_str().unwrap()).unwrap();
            expect!(ds.samples().unwrap().next().unwrap(), WdsError::Io { .. })
        },
    },
    Case {
        area: "shard",
        input: "an `ftp://` shard URL",
        error: "wds::Error::UnsupportedUrl",
        check: |_| {
            let ds = atdata::wds::Dataset::<Row>::new("ftp://host/a.tar").unwrap();
            expect!(
                ds.samples().unwrap().next().unwrap(),
                WdsError::UnsupportedUrl { .. }
            )
        },
    },
    // ---------------------------------------------------------------- sidecars
    Case {
        area: "sidecar",
        input: "a first line that is not `v1.2 <count>`",
        error: "wds::Error::BadSidecar",
        check: |dir| {
            expect!(
                get_with_sidecar(dir, "v1.1 2\n", 0),
                WdsError::BadSidecar { line: 1, .. }
            )
        },
    },
    Case {
        area: "sidecar",
        input: "a count of 2^63 over one line",
        error: "wds::Error::BadSidecar, nothing allocated from it",
        check: |dir| {
            let text = "v1.2 9223372036854775808\nmsgpack 512 10 000000.msgpack\n";
            expect!(get_with_sidecar(dir, text, 0), WdsError::BadSidecar { .. })
        },
    },
    Case {
        area: "sidecar",
        input: "a member whose offset is inside the member before it",
        error: "wds::Error::BadSidecar naming the line",
        check: |dir| {
            let text = "v1.2 2\nmsgpack 512 40 000000.msgpack\nmsgpack 512 40 000001.msgpack\n";
            expect!(
                get_with_sidecar(dir, text, 1),
                WdsError::BadSidecar { line: 3, .. }
            )
        },
    },
    Case {
        area: "sidecar",
        input: "an offset whose header names another member",
        error: "wds::Error::SidecarMismatch",
        check: |dir| {
            let text = "v1.2 1\nmsgpack 1536 19 000000.msgpack\n";
            expect!(
                get_with_sidecar(dir, text, 0),
                WdsError::SidecarMismatch { .. }
            )
        },
    },
    Case {
        area: "sidecar",
        input: "a member past the shard's end",
        error: "wds::Error::SidecarMismatch",
        check: |dir| {
            let text = "v1.2 1\nmsgpack 1048576 19 000000.msgpack\n";
            expect!(
                get_with_sidecar(dir, text, 0),
                WdsError::SidecarMismatch { .. }
            )
        },
    },
    Case {
        area: "sidecar",
        input: "an index past the dataset's length",
        error: "wds::Error::IndexOutOfRange",
        check: |dir| {
            let got = get_with_sidecar(dir, "v1.2 0\n", 0);
            expect!(got, WdsError::IndexOutOfRange { index: 0, len: 0 })
        },
    },
    // ---------------------------------------------------------------- loader
    Case {
        area: "loader",
        input: "a state edited past the end of its epoch",
        error: "wds::Error::LoaderStateMismatch",
        check: |dir| {
            expect!(
                resume_edited(dir, |s| s.replace("\"batches\":0", "\"batches\":99")),
                WdsError::LoaderStateMismatch {
                    field: "batches",
                    ..
                }
            )
        },
    },
    Case {
        area: "loader",
        input: "a state of another format version",
        error: "wds::Error::LoaderStateMismatch",
        check: |dir| {
            expect!(
                resume_edited(dir, |s| s.replace("\"version\":1", "\"version\":7")),
                WdsError::LoaderStateMismatch {
                    field: "format version",
                    ..
                }
            )
        },
    },
    Case {
        area: "loader",
        input: "a state of other shards (another fingerprint)",
        error: "wds::Error::LoaderStateMismatch",
        check: |dir| {
            let edit = |s: String| {
                let at = s.find("\"fingerprint\":\"").unwrap() + 15;
                format!("{}0000{}", &s[..at], &s[at + 4..])
            };
            expect!(
                resume_edited(dir, edit),
                WdsError::LoaderStateMismatch {
                    field: "dataset fingerprint",
                    ..
                }
            )
        },
    },
    Case {
        area: "loader",
        input: "a state at the end of epoch 2^64 - 1",
        error: "wds::Error::LoaderStateMismatch",
        check: |dir| {
            let edit = |s: String| {
                s.replace("\"epoch\":0", "\"epoch\":18446744073709551615")
                    .replace("\"batches\":0", "\"batches\":1")
            };
            expect!(
                resume_edited(dir, edit),
                WdsError::LoaderStateMismatch { field: "epoch", .. }
            )
        },
    },
    Case {
        area: "loader",
        input: "2^40 partitions",
        error: "wds::Error::BadLoaderOptions, nothing allocated",
        check: |dir| {
            let ds = Dataset::<Row>::new(two_row_shard(dir)).unwrap();
            let options = LoaderOptions {
                global_batch: 2,
                partitions: 1 << 40,
                ..Default::default()
            };
            expect!(
                ds.loader(options).map(drop),
                WdsError::BadLoaderOptions { .. }
            )
        },
    },
    Case {
        area: "loader",
        input: "an index count of 2^40 samples for a two-sample shard",
        error: "wds::Error::SidecarMismatch, the loader's one item",
        check: |dir| {
            let path = two_row_shard(dir).to_str().unwrap().to_owned();
            let facts = ShardFacts {
                samples: Some(1 << 40),
                bytes: None,
            };
            let ds = Dataset::<Row>::new(&path)
                .unwrap()
                .with_shard_facts([(path, facts)]);
            let options = LoaderOptions {
                global_batch: 2,
                seed: Some(1),
                ..Default::default()
            };
            let mut loader = ds.loader(options).map_err(|e| e.to_string())?;
            let first = loader.next().ok_or("no item")?;
            match (first, loader.next()) {
                (Err(WdsError::SidecarMismatch { .. }), None) => Ok(()),
                (other, _) => Err(format!("got {other:?}")),
            }
        },
    },
    // ---------------------------------------------------------------- payloads
    Case {
        area: "payload",
        input: "a msgpack list instead of a map",
        error: "codec::Error::UnexpectedType",
        check: |_| expect!(row_from(json!([1, "a"])), CodecError::UnexpectedType { .. }),
    },
    Case {
        area: "payload",
        input: "a required field missing",
        error: "codec::Error::MissingField",
        check: |_| expect!(row_from(json!({"id": 1})), CodecError::MissingField { .. }),
    },
    Case {
        area: "payload",
        input: "a field the type does not have",
        error: "codec::Error::UnknownField",
        check: |_| {
            expect!(
                row_from(json!({"id": 1, "text": "a", "extra": 2})),
                CodecError::UnknownField { .. }
            )
        },
    },
    Case {
        area: "payload",
        input: "a key that is not UTF-8",
        error: "codec::Error::Msgpack (not valid UTF-8)",
        check: |_| {
            // {"id": 1, b"\xff\xfe": 2, "text": "a"}
            let bytes = [
                0x83, 0xa2, b'i', b'd', 1, 0xa2, 0xff, 0xfe, 2, 0xa4, b't', b'e', b'x', b't', 0xa1,
                b'a',
            ];
            use atdata_codec::{BatchBuilder, SampleType};
            let mut batch = <Row as SampleType>::Builder::with_capacity(&(), 1);
            expect!(
                raw_row(&bytes),
                CodecError::Msgpack("string is not valid UTF-8")
            )?;
            expect!(
                batch.decode_into(&(), &bytes),
                CodecError::Msgpack("string is not valid UTF-8")
            )
        },
    },
    Case {
        area: "payload",
        input: "a key given twice",
        error: "codec::Error::DuplicateField",
        check: |_| {
            // {"id": 1, "id": 2, "text": "a"}
            let bytes = [
                0x83, 0xa2, b'i', b'd', 1, 0xa2, b'i', b'd', 2, 0xa4, b't', b'e', b'x', b't', 0xa1,
                b'a',
            ];
            expect!(raw_row(&bytes), CodecError::DuplicateField { .. })
        },
    },
    Case {
        area: "payload",
        input: "a string where an int is declared",
        error: "codec::Error::Field { UnexpectedType }",
        check: |_| {
            expect!(
                row_from(json!({"id": "one", "text": "a"})),
                CodecError::Field { .. }
            )
        },
    },
    Case {
        area: "payload",
        input: "an int too large for an i32 field",
        error: "codec::Error::Field { IntegerOutOfRange }",
        check: |_| {
            expect!(
                row_from(json!({"id": 1u64 << 40, "text": "a"})),
                CodecError::Field { .. }
            )
        },
    },
    Case {
        area: "payload",
        input: "bytes after the map",
        error: "codec::Error::TrailingBytes",
        check: |_| {
            let mut bytes = json_to_msgpack(&json!({"id": 1, "text": "a"})).unwrap();
            bytes.push(0xc0);
            expect!(raw_row(&bytes), CodecError::TrailingBytes { .. })
        },
    },
    Case {
        area: "payload",
        input: "a str32 claiming 4 GiB in a 10-byte payload",
        error: "codec::Error (truncated), no allocation",
        check: |_| {
            let bytes = [0x82, 0xa2, b'i', b'd', 1, 0xdb, 0xff, 0xff, 0xff, 0xff];
            expect!(raw_row(&bytes), _)
        },
    },
    Case {
        area: "payload",
        input: "a map32 claiming 4 billion entries",
        error: "codec::Error, no allocation",
        check: |_| expect!(raw_row(&[0xdf, 0xff, 0xff, 0xff, 0xff]), _),
    },
    Case {
        area: "payload",
        input: "an empty payload",
        error: "codec::Error::Msgpack",
        check: |_| expect!(raw_row(&[]), _),
    },
    // ---------------------------------------------------------------- arrays
    Case {
        area: "array",
        input: "a dtype that is not a dtype",
        error: "ArrayError::InvalidDtype",
        check: |_| {
            expect!(
                array(&array_payload("<q9", &[1], &[0; 4])),
                ArrayError::InvalidDtype(_)
            )
        },
    },
    Case {
        area: "array",
        input: "a datetime (`<M8`) array for an f32 field",
        error: "ArrayError::DtypeMismatch",
        check: |_| {
            expect!(
                array(&array_payload("<M8", &[1], &[0; 8])),
                ArrayError::DtypeMismatch { .. }
            )
        },
    },
    Case {
        area: "array",
        input: "a negative dimension",
        error: "ArrayError::NegativeDimension",
        check: |_| {
            expect!(
                array(&array_payload("<f4", &[-1], &[])),
                ArrayError::NegativeDimension(_)
            )
        },
    },
    Case {
        area: "array",
        input: "a shape of 2^60 elements over 8 bytes",
        error: "ArrayError::ShapeOverflow or LengthMismatch, before allocating",
        check: |_| {
            expect!(
                array(&array_payload("<f4", &[1 << 30, 1 << 30], &[0; 8])),
                ArrayError::ShapeOverflow(_) | ArrayError::LengthMismatch { .. }
            )
        },
    },
    Case {
        area: "array",
        input: "data shorter than the shape needs",
        error: "ArrayError::LengthMismatch",
        check: |_| {
            expect!(
                array(&array_payload("<f4", &[4], &[0; 8])),
                ArrayError::LengthMismatch { .. }
            )
        },
    },
    Case {
        area: "array",
        input: "a header cut off",
        error: "ArrayError::TooShort",
        check: |_| expect!(array(&[3, b'<', b'f']), ArrayError::TooShort { .. }),
    },
    Case {
        area: "array",
        input: "`<f8` data for an f32 field",
        error: "ArrayError::DtypeMismatch",
        check: |_| {
            expect!(
                array(&array_payload("<f8", &[1], &[0; 8])),
                ArrayError::DtypeMismatch { .. }
            )
        },
    },
    Case {
        area: "array",
        input: "a 2-D array for a 1-D field",
        error: "ArrayError::DimensionMismatch",
        check: |_| {
            expect!(
                atdata::decode_array::<f32, ndarray::Ix1>(&array_payload("<f4", &[1, 1], &[0; 4])),
                ArrayError::DimensionMismatch {
                    expected: 1,
                    found: 2
                }
            )
        },
    },
    Case {
        area: "array",
        input: "a legacy `.npy` whose header is not a dict",
        error: "ArrayError::InvalidNpy",
        check: |_| {
            let mut npy = b"\x93NUMPY\x01\x00".to_vec();
            let head = b"garbage\n";
            npy.extend_from_slice(&(head.len() as u16).to_le_bytes());
            npy.extend_from_slice(head);
            expect!(array(&npy), ArrayError::InvalidNpy(_))
        },
    },
    // ---------------------------------------------------------------- patterns
    Case {
        area: "pattern",
        input: "`data-{0..3.tar` (unbalanced)",
        error: "wds::Error::InvalidPattern",
        check: |_| {
            expect!(
                expand_urls("data-{0..3.tar"),
                WdsError::InvalidPattern { .. }
            )
        },
    },
    Case {
        area: "pattern",
        input: "`data-}0.tar` (a stray `}`)",
        error: "wds::Error::InvalidPattern",
        check: |_| expect!(expand_urls("data-}0.tar"), WdsError::InvalidPattern { .. }),
    },
    Case {
        area: "pattern",
        input: "braces nested 5,000 deep (10 KB)",
        error: "wds::Error::InvalidPattern (64 levels at most), no stack overflow",
        check: |_| {
            let deep = format!("{}x{}", "{a,".repeat(5000), "}".repeat(5000));
            expect!(expand_urls(&deep), WdsError::InvalidPattern { .. })
        },
    },
    Case {
        area: "pattern",
        input: "`{-9223372036854775808..9223372036854775807}`",
        error: "wds::Error::InvalidPattern (not 0 shards)",
        check: |_| {
            expect!(
                expand_urls("{-9223372036854775808..9223372036854775807}"),
                WdsError::InvalidPattern { .. }
            )
        },
    },
    Case {
        area: "pattern",
        input: "`{0..99999999}` (100 million shards)",
        error: "wds::Error::InvalidPattern",
        check: |_| {
            expect!(
                expand_urls("{0..99999999}"),
                WdsError::InvalidPattern { .. }
            )
        },
    },
    Case {
        area: "pattern",
        input: "`{0..9999}{0..9999}` (a product of 100 million)",
        error: "wds::Error::InvalidPattern",
        check: |_| {
            expect!(
                expand_urls("{0..9999}{0..9999}"),
                WdsError::InvalidPattern { .. }
            )
        },
    },
    // ---------------------------------------------------------------- schemas
    Case {
        area: "schema",
        input: "a sample of lists nested 5,000 deep (5 KB), inferred",
        error: "codec::Error::Uninferable (32 levels at most), no stack overflow",
        check: |_| {
            let mut p = vec![0x81, 0xa1, b'x'];
            p.extend(std::iter::repeat_n(0x91, 5000));
            p.push(1);
            expect!(
                atdata::Schema::infer("Deep", [&p[..]]),
                CodecError::Field { .. } | CodecError::Uninferable(_)
            )
        },
    },
    Case {
        area: "schema",
        input: "a nested map, inferred",
        error: "codec::Error::Uninferable",
        check: |_| {
            let p = json_to_msgpack(&json!({"m": {"a": 1}})).unwrap();
            expect!(
                atdata::Schema::infer("M", [&p[..]]),
                CodecError::Field { .. } | CodecError::Uninferable(_)
            )
        },
    },
    Case {
        area: "schema",
        input: "a field that changes type between samples, inferred",
        error: "codec::Error::Uninferable",
        check: |_| {
            let a = json_to_msgpack(&json!({"x": 1})).unwrap();
            let b = json_to_msgpack(&json!({"x": "one"})).unwrap();
            expect!(
                atdata::Schema::infer("X", [&a[..], &b[..]]),
                CodecError::Uninferable(_)
            )
        },
    },
    Case {
        area: "schema",
        input: "a schema record that is not JSON",
        error: "codec::Error::InvalidSchemaRecord",
        check: |_| {
            expect!(
                SchemaRecord::from_json("{not json"),
                CodecError::InvalidSchemaRecord(_)
            )
        },
    },
    Case {
        area: "schema",
        input: "a schema record with lists nested 40 deep",
        error: "codec::Error (32 levels at most)",
        check: |_| {
            let field = atdata::SchemaField {
                name: "deep".into(),
                field_type: nested_type(40),
                optional: false,
            };
            let schema = atdata::Schema {
                name: "Deep".into(),
                fields: vec![field],
                description: None,
            };
            let text = SchemaRecord::new(schema, "1.0.0", "t").to_json();
            expect!(SchemaRecord::from_json(&text), _)
        },
    },
    Case {
        area: "schema",
        input: "`atdata://elsewhere/x` as a schema reference",
        error: "codec::Error::InvalidSchemaRef",
        check: |_| {
            expect!(
                atdata::SchemaRef::parse("atdata://elsewhere/x"),
                CodecError::InvalidSchemaRef { .. }
            )
        },
    },
    Case {
        area: "schema",
        input: "publishing a schema with lists nested 40 deep",
        error: "index::Error::Codec, nothing written",
        check: |dir| {
            let field = atdata::SchemaField {
                name: "deep".into(),
                field_type: nested_type(40),
                optional: false,
            };
            let schema = atdata::Schema {
                name: "Deep".into(),
                fields: vec![field],
                description: None,
            };
            rt().block_on(async {
                let index = LocalIndex::open_sqlite(dir.join("index.db")).await.unwrap();
                let published = index.publish_schema_of(&schema, None, None).await;
                if !index.list_schemas().await.unwrap().is_empty() {
                    return Err("a record was written".into());
                }
                expect!(published, IndexError::Codec(_))
            })
        },
    },
    // ---------------------------------------------------------------- index rows
    Case {
        area: "index",
        input: "a SQLite entry whose data_urls blob is not msgpack",
        error: "index::Error::Corrupt naming the row; the other entries still listed",
        check: |dir| {
            let (index, conn) = sqlite_index(dir);
            conn.execute(
                "INSERT INTO dataset_entries (cid, name, schema_ref, data_urls) VALUES ('bafybad', 'bad', 'r', x'c1')",
                [],
            )
            .unwrap();
            let listed: Vec<_> = rt().block_on(index.entries().collect());
            let good = listed.iter().filter(|e| e.is_ok()).count();
            let bad: Vec<_> = listed.iter().filter_map(|e| e.as_ref().err()).collect();
            match bad.as_slice() {
                [IndexError::Corrupt { key, .. }] if key.contains("bafybad") && good == 1 => Ok(()),
                _ => Err(format!("{listed:?}")),
            }
        },
    },
    Case {
        area: "index",
        input: "a SQLite entry whose data_urls column holds text",
        error: "index::Error::Corrupt naming the row; the others still listed",
        check: |dir| {
            let (index, conn) = sqlite_index(dir);
            conn.execute(
                "INSERT INTO dataset_entries (cid, name, schema_ref, data_urls) VALUES ('bafytext', 'bad', 'r', 'not a blob')",
                [],
            )
            .unwrap();
            let listed: Vec<_> = rt().block_on(index.entries().collect());
            let good = listed.iter().filter(|e| e.is_ok()).count();
            let named = listed.iter().any(
                |e| matches!(e, Err(IndexError::Corrupt { key, .. }) if key.contains("bafytext")),
            );
            if named && good == 1 {
                Ok(())
            } else {
                Err(format!("{listed:?}"))
            }
        },
    },
    Case {
        area: "index",
        input: "a SQLite schema row whose JSON is broken",
        error: "index::Error::Corrupt naming the row; the other records still listed",
        check: |dir| {
            let (index, conn) = sqlite_index(dir);
            conn.execute(
                "INSERT INTO schemas (name, version, schema_json) VALUES ('Broken', '1.0.0', '{')",
                [],
            )
            .unwrap();
            let listed = rt().block_on(index.list_schemas()).unwrap();
            let good = listed.iter().filter(|s| s.is_ok()).count();
            let named = listed.iter().any(
                |s| matches!(s, Err(IndexError::Corrupt { key, .. }) if key.contains("Broken@1.0.0")),
            );
            if named && good == 1 {
                Ok(())
            } else {
                Err(format!("{listed:?}"))
            }
        },
    },
    Case {
        area: "index",
        input: "a name no entry has",
        error: "index::Error::NotFound",
        check: |dir| {
            let (index, _) = sqlite_index(dir);
            expect!(
                rt().block_on(index.get_entry_by_name("nothing")),
                IndexError::NotFound { .. }
            )
        },
    },
    Case {
        area: "index",
        input: "a schema reference no record has",
        error: "index::Error::NotFound",
        check: |dir| {
            let (index, _) = sqlite_index(dir);
            expect!(
                rt().block_on(index.get_schema("atdata://local/schema/Nothing@1.0.0")),
                IndexError::NotFound { .. }
            )
        },
    },
    Case {
        area: "index",
        input: "a short schema reference with no name (`@1.0.0`)",
        error: "index::Error::Codec (InvalidSchemaRef)",
        check: |dir| {
            let (index, _) = sqlite_index(dir);
            expect!(
                rt().block_on(index.get_schema("@1.0.0")),
                IndexError::Codec(atdata::Error::InvalidSchemaRef { .. })
            )
        },
    },
    Case {
        area: "index",
        input: "a bare schema name with no `major.minor.patch` version published",
        error: "index::Error::NotFound",
        check: |dir| {
            let (index, _) = sqlite_index(dir);
            let loose = atdata::Schema {
                name: "Loose".into(),
                ..Row::schema()
            };
            rt().block_on(index.publish_schema_of(&loose, "latest", None))
                .unwrap();
            expect!(
                rt().block_on(index.resolve_schema_ref("Loose")),
                IndexError::NotFound { .. }
            )
        },
    },
    Case {
        area: "index",
        input: "deleting a CID no entry has",
        error: "index::Error::NotFound, nothing deleted",
        check: |dir| {
            let (index, _) = sqlite_index(dir);
            let missing = "bafyreidguopn2tyxrys5lpmlqgorvccrtz6devk3hievskv7pt5im4xrce";
            let options = atdata::DeleteOptions::default();
            expect!(
                rt().block_on(index.delete(missing, options)),
                IndexError::NotFound { .. }
            )?;
            match rt().block_on(index.all_entries()) {
                Ok(all) if all.len() == 1 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    },
    Case {
        area: "index",
        input: "`:memory:` as the SQLite path",
        error: "index::Error::Invalid",
        check: |_| {
            expect!(
                rt().block_on(LocalIndex::open_sqlite(":memory:")),
                IndexError::Invalid(_)
            )
        },
    },
    Case {
        area: "index",
        input: "a malformed Redis URL holding a password",
        error: "index::Error::Redis, the password not shown",
        check: |_| {
            let err = rt()
                .block_on(LocalIndex::connect_redis("redis://:hunter2@[nonsense"))
                .unwrap_err();
            let shown = format!("{err} {err:?}");
            if shown.contains("hunter2") {
                return Err(shown);
            }
            expect!(Err::<(), _>(err), IndexError::Redis { .. })
        },
    },
    // ---------------------------------------------------------------- credentials and URLs
    Case {
        area: "credentials",
        input: "AWS_ENDPOINT `not a url`",
        error: "store::Error::Credentials",
        check: |_| refused(&[("AWS_ENDPOINT", "not a url")]),
    },
    Case {
        area: "credentials",
        input: "AWS_ENDPOINT with `user:password@`",
        error: "store::Error::Credentials, the password not shown",
        check: |_| {
            let err =
                credentials(&[("AWS_ENDPOINT", "http://u:topsecret@127.0.0.1:9000")]).unwrap_err();
            if format!("{err} {err:?}").contains("topsecret") {
                return Err(err.to_string());
            }
            expect!(Err::<(), _>(err), atdata::store::Error::Credentials(_))
        },
    },
    Case {
        area: "credentials",
        input: "a control character in the secret key",
        error: "store::Error::Credentials (not a panic in the S3 client)",
        check: |_| {
            let err = Credentials::from_map([
                ("AWS_ACCESS_KEY_ID", "key"),
                ("AWS_SECRET_ACCESS_KEY", "se\ncret"),
            ])
            .unwrap_err();
            if err.to_string().contains("cret") {
                return Err(err.to_string());
            }
            expect!(Err::<(), _>(err), atdata::store::Error::Credentials(_))
        },
    },
    Case {
        area: "credentials",
        input: "a control character in the session token",
        error: "store::Error::Credentials",
        check: |_| refused(&[("AWS_SESSION_TOKEN", "to\x07ken")]),
    },
    Case {
        area: "credentials",
        input: "a region with a space",
        error: "store::Error::Credentials",
        check: |_| refused(&[("AWS_REGION", "us east")]),
    },
    Case {
        area: "credentials",
        input: "an endpoint port that is not a number",
        error: "store::Error::Credentials",
        check: |_| refused(&[("AWS_ENDPOINT", "http://127.0.0.1:port")]),
    },
    Case {
        area: "credentials",
        input: "an endpoint with a query string",
        error: "store::Error::Credentials",
        check: |_| refused(&[("AWS_ENDPOINT", "http://127.0.0.1:9000/?token=x")]),
    },
    Case {
        area: "credentials",
        input: "no secret key",
        error: "store::Error::Credentials",
        check: |_| {
            expect!(
                Credentials::from_map([("AWS_ACCESS_KEY_ID", "key")]),
                atdata::store::Error::Credentials(_)
            )
        },
    },
    Case {
        area: "credentials",
        input: "a `.env` file with a malformed line holding a secret",
        error: "store::Error::Credentials naming the byte, not the line",
        check: |dir| {
            let path = dir.join(".env");
            std::fs::write(&path, "AWS_SECRET_ACCESS_KEY='unterminated-s3cr3t\n").unwrap();
            let err = Credentials::from_env_file(&path).unwrap_err();
            if err.to_string().contains("s3cr3t") {
                return Err(err.to_string());
            }
            expect!(Err::<(), _>(err), atdata::store::Error::Credentials(_))
        },
    },
    // ---------------------------------------------------------------- writers
    Case {
        area: "writer",
        input: "a key holding `.`",
        error: "wds::Error::InvalidKey, nothing written",
        check: |_| {
            let mut w = TarWriter::new(Vec::new());
            let result = w.write(&WdsSample::msgpack("a.b", vec![1]));
            if w.bytes_written() != 0 {
                return Err("bytes written".into());
            }
            expect!(result, WdsError::InvalidKey { .. })
        },
    },
    Case {
        area: "writer",
        input: "a sample whose second extension holds `/`",
        error: "wds::Error::InvalidKey, no half sample written",
        check: |_| {
            let mut w = TarWriter::new(Vec::new());
            let sample = WdsSample {
                key: "k".into(),
                members: vec![("msgpack".into(), vec![1]), ("a/b".into(), vec![2])],
            };
            let result = w.write(&sample);
            if w.bytes_written() != 0 {
                return Err("half a sample written".into());
            }
            expect!(result, WdsError::InvalidKey { .. })
        },
    },
    Case {
        area: "writer",
        input: "an insert whose samples do not follow its schema",
        error: "index::Error::Store (naming key and field), nothing written",
        check: |dir| {
            let path = dir.join("src.tar");
            let payload = json_to_msgpack(&json!({"id": "x", "text": "a"})).unwrap();
            std::fs::write(&path, tar_of(&[WdsSample::msgpack("k0", payload)])).unwrap();
            rt().block_on(async {
                let (index, store_dir) = crate::hardening::sqlite_with_store(dir).await;
                let ds = Dataset::<Row>::new(path.to_str().unwrap()).unwrap();
                let result = index.insert_dataset(&ds, "rows", "rows").await;
                index.shutdown().await.unwrap();
                if std::fs::read_dir(&store_dir).unwrap().next().is_some() {
                    return Err(format!("shards left: {:?}", crate::index::walk(&store_dir)));
                }
                match &result {
                    Err(e) if e.to_string().contains("k0") && e.to_string().contains("id") => {}
                    other => return Err(format!("{other:?}")),
                }
                expect!(result, IndexError::Store(_))
            })
        },
    },
    Case {
        area: "config",
        input: "`--index` with an unknown scheme holding a password",
        error: "exit 1, the spec not echoed",
        check: |dir| {
            let out = crate::services::scrub(&mut std::process::Command::new(crate::cli::built(
                "atdata",
            )))
            .args(["ls", "--index", "postgres://u:hunter2@db/x"])
            .env("HOME", dir)
            .output()
            .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(1) || stderr.contains("hunter2") {
                return Err(stderr.into_owned());
            }
            only_index_in(dir)
        },
    },
    Case {
        area: "config",
        input: "`ATDATA_INDEX` holding a password, shown by `--help`",
        error: "the value is not printed",
        check: |dir| {
            let out = crate::services::scrub(&mut std::process::Command::new(crate::cli::built(
                "atdata",
            )))
            .arg("--help")
            .env("ATDATA_INDEX", "redis://:hunter2@127.0.0.1:6379/0")
            .env("HOME", dir)
            .output()
            .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() || stdout.contains("hunter2") {
                return Err(stdout.into_owned());
            }
            Ok(())
        },
    },
    Case {
        area: "config",
        input: "a malformed `.env` in the working directory",
        error: "exit 1, naming the byte, not the line",
        check: |dir| {
            std::fs::write(dir.join(".env"), "ATDATA_INDEX='redis://:hunter2@h\n").unwrap();
            let out = crate::services::scrub(&mut std::process::Command::new(crate::cli::built(
                "atdata",
            )))
            .arg("ls")
            .current_dir(dir)
            .env("HOME", dir)
            .output()
            .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() != Some(1)
                || stderr.contains("hunter2")
                || !stderr.contains(".env")
            {
                return Err(stderr.into_owned());
            }
            Ok(())
        },
    },
    Case {
        area: "remote",
        input: "an http(s) URL with credentials in it",
        error: "store::Error::ForeignUrl, the password not shown",
        check: |_| {
            use atdata::wds::ShardOpener;
            let url = "http://user:hunter2@127.0.0.1:9/data.tar";
            match StoreOpener::from_env().open(url) {
                Err(e)
                    if !e.to_string().contains("hunter2")
                        && e.to_string().contains("credentials") =>
                {
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
                Ok(_) => Err("opened".into()),
            }
        },
    },
    Case {
        area: "cache",
        input: "a shard that does not match the checksum its entry records",
        error: "wds::Error::Io (InvalidData, both hashes) at the shard's end, no copy kept",
        check: |dir| {
            let (cache, ds) = cached_one_row(dir, &"0".repeat(64));
            let last = ds.samples().unwrap().last();
            if !cache.list().unwrap().is_empty() {
                return Err("a copy was kept".into());
            }
            match last {
                Some(Err(WdsError::Io { source, .. }))
                    if source.kind() == std::io::ErrorKind::InvalidData
                        && source.to_string().contains(&"0".repeat(64)) =>
                {
                    Ok(())
                }
                other => Err(format!("got {other:?}")),
            }
        },
    },
    Case {
        area: "cache",
        input: "a checksum that is not a SHA-256 (`../../x`)",
        error: "never a file name: the shard is read uncached",
        check: |dir| {
            let (cache, ds) = cached_one_row(dir, "../../x");
            let read = ds.samples().unwrap().collect::<Result<Vec<_>, _>>();
            let stray = dir.parent().unwrap().join("x.tar").exists() || dir.join("x.tar").exists();
            match (read, cache.list().unwrap().is_empty(), stray) {
                (Ok(rows), true, false) if rows.len() == 1 => Ok(()),
                other => Err(format!(
                    "{:?}",
                    (other.0.map(|r| r.len()), other.1, other.2)
                )),
            }
        },
    },
];

#[test]
fn every_bad_input_gives_a_typed_error_and_writes_nothing() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let outcome = std::panic::catch_unwind(|| (case.check)(dir.path()));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(why)) => failures.push(format!("{}: {}: {why}", case.area, case.input)),
            Err(_) => failures.push(format!("{}: {}: panicked", case.area, case.input)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_docs_list_every_case() {
    let docs = include_str!("../docs/bad-input.md");
    let missing: Vec<_> = CASES
        .iter()
        .filter(|c| !docs.contains(&format!("| {} | {} | {} |", c.area, c.input, c.error)))
        .map(|c| format!("| {} | {} | {} |", c.area, c.input, c.error))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/bad-input.md lacks these rows:\n{}",
        missing.join("\n")
    );
}

// ---------------------------------------------------------------- memory, in a child process

/// Runs the ignored test `name` of this binary in a child process; its peak RSS in bytes.
pub(crate) fn peak_rss_of(name: &str) -> u64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            name,
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.split("peak-rss-bytes ").nth(1))
        .unwrap_or_else(|| panic!("{name} printed no peak: {stdout}"))
        .trim()
        .parse()
        .unwrap()
}

/// Prints this process's peak RSS for [`peak_rss_of`].
pub(crate) fn print_peak_rss() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    println!("peak-rss-bytes {}", kb * 1024);
}

/// A header claiming `size` bytes, then zeros forever: an endless stream.
struct Endless {
    head: Vec<u8>,
    at: usize,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at < self.head.len() {
            let n = buf.len().min(self.head.len() - self.at);
            buf[..n].copy_from_slice(&self.head[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        buf.fill(0);
        Ok(buf.len())
    }
}

#[test]
#[ignore = "run in a child process by the memory cases"]
fn child_endless_stream_behind_an_8_gib_header() {
    let endless = Endless {
        head: header("k.msgpack", (8 << 30) - 1, b'0'),
        at: 0,
    };
    let first = TarReader::new(endless, "endless.tar").next().unwrap();
    assert!(
        matches!(first, Err(WdsError::MemberOverLimit { .. })),
        "{first:?}"
    );
    print_peak_rss();
}

#[test]
#[ignore = "run in a child process by the memory cases"]
fn child_a_512_mib_member() {
    let size: u64 = 512 << 20;
    // The header, the member, then zeros: the end-of-archive marker.
    let stream = Endless {
        head: header("k.bin", size, b'0'),
        at: 0,
    };
    let limit = 512 + size + 1024;
    let mut reader = TarReader::new(stream.take(limit), "big.tar");
    let sample = reader.next().unwrap().unwrap();
    assert_eq!(sample.members[0].1.len() as u64, size);
    print_peak_rss();
}

#[test]
fn lying_headers_and_large_members_cost_bounded_memory() {
    let endless = peak_rss_of("bad_input::child_endless_stream_behind_an_8_gib_header");
    assert!(
        endless < 64 << 20,
        "an 8 GiB header over an endless stream took {endless} bytes"
    );
    let big = peak_rss_of("bad_input::child_a_512_mib_member");
    // The member itself, once (it was 2.1x before: a doubling buffer and a copy).
    assert!(
        big < (512 << 20) + (512 << 20) / 4,
        "a 512 MiB member took {} MiB",
        big >> 20
    );
}
