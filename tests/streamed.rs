//! Payloads decoded as they stream in: a shard of large samples is read by the consumer of
//! `ordered`, each payload decoded from its first bytes and a reader of the rest, array
//! elements read from the shard straight into their place in the batch. Checked against the
//! payload decoded in memory (every array layout: compact in either byte order, `.npy` in C
//! and Fortran order, `bool` elements; every split of the payload; fields before and after
//! the array; errors), and whole datasets against the per-sample path, errors included. The
//! loader reads the large samples of local shards the same way, where their batch is built:
//! checked against `get_key`, with its stop-and-resume on a failed read; so does `shuffled`
//! for local shards with sidecars: checked against the same shards read by their reader, and
//! against stale sidecars.

use std::io::{Read, Write};

use atdata::__private::Encoder;
use atdata::ndarray::{Array2, Array3};
use atdata::prelude::*;
use atdata::wds::{Dataset, LoaderOptions, LoaderState};
use atdata::{Packable, SampleType, encode_array};
use atdata_codec::BatchBuilder;

use crate::bad_input::{peak_rss_of, print_peak_rss};
use crate::batch_path::compared;

/// A large array between small fields, and a `bool` array after it.
#[packable]
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    label: String,
    image: Array3<f32>,
    mask: Array2<bool>,
    id: i64,
}

type Builder = <Frame as SampleType>::Builder;

fn frame(id: usize, side: usize) -> Frame {
    Frame {
        label: format!("frame {id}"),
        image: Array3::from_shape_fn((side, side + 1, 3), |(y, x, c)| {
            (id * 1000 + y * 31 + x * 7 + c) as f32 / 8.0
        }),
        mask: Array2::from_shape_fn((side, 2), |(y, x)| (y + x + id).is_multiple_of(3)),
        id: id as i64,
    }
}

/// `frame`'s payload with its image encoded as `image` (array payload bytes).
fn payload_with(frame: &Frame, image: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out);
    enc.map_len(4).unwrap();
    enc.str("label").unwrap();
    enc.str(&frame.label).unwrap();
    enc.str("image").unwrap();
    enc.bin(image).unwrap();
    enc.str("mask").unwrap();
    enc.bin(&encode_array(&frame.mask).unwrap()).unwrap();
    enc.str("id").unwrap();
    enc.int(frame.id).unwrap();
    out
}

/// The image as a `.npy` file (version 1), in C or Fortran order.
fn npy(image: &Array3<f32>, fortran: bool) -> Vec<u8> {
    let shape = image.shape();
    let dict = format!(
        "{{'descr': '<f4', 'fortran_order': {}, 'shape': ({}, {}, {}), }}",
        if fortran { "True" } else { "False" },
        shape[0],
        shape[1],
        shape[2]
    );
    let padded = (10 + dict.len() + 1).div_ceil(64) * 64 - 10;
    let mut header = dict.into_bytes();
    header.resize(padded - 1, b' ');
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(padded as u16).to_le_bytes());
    out.extend_from_slice(&header);
    let values: Vec<f32> = if fortran {
        image.t().iter().copied().collect()
    } else {
        image.iter().copied().collect()
    };
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The image in the compact format, big-endian.
fn big_endian(image: &Array3<f32>) -> Vec<u8> {
    let mut out = vec![3, b'>', b'f', b'4', 3];
    for &d in image.shape() {
        out.extend_from_slice(&(d as i64).to_le_bytes());
    }
    for v in image.iter() {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// A builder holding `before` rows decoded in memory, then `payload` decoded in memory or
/// streamed from its first `head` bytes; the batch, or the error's text.
fn decoded(before: &[Vec<u8>], payload: &[u8], head: Option<usize>) -> Result<Vec<Frame>, String> {
    let mut builder = Builder::with_capacity(&(), 4);
    for row in before {
        builder.decode_into(&(), row).unwrap();
    }
    let outcome = match head {
        None => builder.decode_into(&(), payload),
        Some(head) => {
            let mut spill = Vec::new();
            let (head, mut rest) = payload.split_at(head);
            let len = rest.len();
            builder.decode_streaming(&(), head, &mut rest, len, &mut spill)
        }
    };
    let rows = builder.rows();
    let keys = (0..rows).map(|i| i.to_string()).collect();
    let batch = builder.finish(&(), keys).map_err(|e| e.to_string())?;
    outcome.map_err(|e| format!("{e} (then {} rows)", batch.len()))?;
    Ok(batch.into_samples())
}

#[test]
fn streamed_payloads_decode_as_they_do_in_memory() {
    let sample = frame(3, 40);
    let layouts = [
        ("compact", sample.packed().unwrap()),
        (
            "big-endian",
            payload_with(&sample, &big_endian(&sample.image)),
        ),
        ("npy", payload_with(&sample, &npy(&sample.image, false))),
        (
            "npy, Fortran order",
            payload_with(&sample, &npy(&sample.image, true)),
        ),
    ];
    let before = [frame(1, 40).packed().unwrap()];
    for (layout, payload) in &layouts {
        let expected = decoded(&before, payload, None);
        assert_eq!(
            expected.as_ref().map(|rows| rows[1].clone()),
            Ok(sample.clone()),
            "{layout}"
        );
        // Splits in the small fields, in the headers, inside an element, and none.
        let len = payload.len();
        for head in [
            0,
            1,
            9,
            17,
            30,
            60,
            90,
            100,
            123,
            1001,
            len / 2,
            len - 3,
            len - 1,
            len,
        ] {
            for before in [&before[..], &[]] {
                let streamed = decoded(before, payload, Some(head));
                let in_memory = decoded(before, payload, None);
                assert_eq!(
                    streamed, in_memory,
                    "{layout}, {head} of {len} bytes in memory"
                );
            }
        }
    }
}

/// A large `bool` array first (its elements decoded a chunk at a time as they stream in).
#[packable]
#[derive(Debug, Clone, PartialEq)]
struct Mask {
    mask: Array2<bool>,
    id: i64,
}

#[test]
fn bool_arrays_stream_as_they_decode_in_memory() {
    let rows: Vec<Mask> = (0..3)
        .map(|id| Mask {
            mask: Array2::from_shape_fn((300, 301), |(y, x)| (y * x + id).is_multiple_of(7)),
            id: id as i64,
        })
        .collect();
    let mut payload = rows[2].packed().unwrap();
    // Any non-zero byte is `true`, as numpy reads it.
    let last = payload.len() - 3;
    payload[last - 5000] = 7;
    let expected = {
        let mut builder = <Mask as SampleType>::Builder::with_capacity(&(), 3);
        for row in &rows[..2] {
            builder.decode_into(&(), &row.packed().unwrap()).unwrap();
        }
        builder.decode_into(&(), &payload).unwrap();
        builder
            .finish(&(), ["a", "b", "c"].into_iter().collect())
            .unwrap()
    };
    for head in [0, 3, 40, 4097, 50_000, payload.len()] {
        let mut builder = <Mask as SampleType>::Builder::with_capacity(&(), 3);
        for row in &rows[..2] {
            builder.decode_into(&(), &row.packed().unwrap()).unwrap();
        }
        let (first, mut rest) = payload.split_at(head);
        let len = rest.len();
        builder
            .decode_streaming(&(), first, &mut rest, len, &mut Vec::new())
            .unwrap();
        let batch = builder
            .finish(&(), ["a", "b", "c"].into_iter().collect())
            .unwrap();
        assert_eq!(batch.mask, expected.mask, "{head} bytes in memory");
        assert_eq!(batch.into_samples(), expected.clone().into_samples());
    }
}

#[test]
fn streamed_payloads_fail_as_they_do_in_memory() {
    let sample = frame(5, 30);
    let packed = sample.packed().unwrap();
    let image = encode_array(&sample.image).unwrap();
    let mut wrong_dtype = image.clone();
    wrong_dtype[1..4].copy_from_slice(b"<i4");
    let mut long_shape = image.clone();
    long_shape[5] += 1;
    let mut trailing = packed.clone();
    trailing.push(0);
    let cases = [
        ("wrong dtype", payload_with(&sample, &wrong_dtype)),
        (
            "shape longer than the data",
            payload_with(&sample, &long_shape),
        ),
        ("not an array", payload_with(&sample, &vec![7; image.len()])),
        ("cut short", packed[..packed.len() - 100].to_vec()),
        ("trailing bytes", trailing),
    ];
    let before = [frame(1, 30).packed().unwrap()];
    for (case, payload) in &cases {
        let in_memory = decoded(&before, payload, None);
        assert!(in_memory.is_err(), "{case}");
        for head in [40, 200, payload.len() / 2] {
            assert_eq!(
                decoded(&before, payload, Some(head)),
                in_memory,
                "{case}, {head}"
            );
        }
    }
    // A stream that ends early is an error, and the rows are as before.
    let mut builder = Builder::with_capacity(&(), 2);
    builder.decode_into(&(), &before[0]).unwrap();
    let (head, rest) = packed.split_at(100);
    let mut short = &rest[..rest.len() - 10];
    let err = builder
        .decode_streaming(&(), head, &mut short, rest.len(), &mut Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("reading the payload"), "{err}");
    assert_eq!(builder.rows(), 1);
    let batch = builder.finish(&(), ["0"].into_iter().collect()).unwrap();
    assert_eq!(batch.into_samples(), [frame(1, 30)]);
}

/// A tar member.
fn member(tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, name, data).unwrap();
}

/// A shard of `count` large frames, as tar bytes, with the members `extra` adds after each
/// sample's own (its key and id given).
fn shard(
    first: usize,
    count: usize,
    extra: impl Fn(&mut tar::Builder<Vec<u8>>, &str, usize),
) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for id in first..first + count {
        let key = format!("{id:06}");
        member(
            &mut tar,
            &format!("{key}.msgpack"),
            &frame(id, 90).packed().unwrap(),
        );
        extra(&mut tar, &key, id);
    }
    tar.into_inner().unwrap()
}

/// Both paths give the same batches of every size: keys, samples, and errors.
fn same_on_both_paths(ds: &Dataset<Frame>) -> (usize, usize) {
    [1, 4, 32].into_iter().fold((0, 0), |(rows, errors), size| {
        let (more_rows, more_errors) = compared(ds, size);
        (rows + more_rows, errors + more_errors)
    })
}

#[test]
fn shards_read_as_they_stream_batch_alike_on_both_paths() {
    // Frames of 97 KB (a payload over 64 KiB: the consumer reads such shards itself), a
    // shard gzipped, samples with a second member, and a shard of one small frame between
    // (decoded on its thread; the batches holding it fail alike, its shape being another).
    let dir = tempfile::tempdir().unwrap();
    let counts = [40, 7, 33, 1, 20];
    let mut first = 0;
    for (k, &count) in counts.iter().enumerate() {
        let bytes = match k {
            3 => {
                let mut w = atdata::wds::TarWriter::new(Vec::new());
                w.write(&frame(first, 2).as_wds(&format!("{first:06}")))
                    .unwrap();
                w.finish().unwrap()
            }
            _ => shard(first, count, |tar, key, id| {
                if k == 2 && id % 5 == 0 {
                    member(tar, &format!("{key}.json"), b"{}");
                }
            }),
        };
        let path = dir.path().join(format!("frames-{k:02}.tar"));
        match k {
            1 => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&bytes).unwrap();
                std::fs::write(&path, gz.finish().unwrap()).unwrap();
            }
            _ => std::fs::write(&path, bytes).unwrap(),
        }
        first += count;
    }
    let url = dir.path().join("frames-{00..04}.tar");
    for threads in [1, 2, 3] {
        let ds = Dataset::<Frame>::new(&url)
            .unwrap()
            .with_parallelism(threads);
        // Of batches of 1, 4 and 32: all, all but the 4 and all but the 32 with the small one.
        let expected = (101 + (101 - 4) + (101 - 32), 2);
        assert_eq!(same_on_both_paths(&ds), expected, "{threads} threads");
    }
}

#[test]
fn broken_shards_read_as_they_stream_fail_alike_on_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    // A sample with a second payload; one whose payload comes after another member; one whose
    // payload is not msgpack; one with no payload.
    let odd = shard(0, 12, |tar, key, id| match id {
        3 => member(
            tar,
            &format!("{key}.msgpack"),
            &frame(id, 90).packed().unwrap(),
        ),
        6 => member(tar, &format!("{key}.json"), b"{}"),
        _ => {}
    });
    let mut tar = tar::Builder::new(Vec::new());
    for id in 20..26 {
        let key = format!("{id:06}");
        match id {
            21 => {
                member(&mut tar, &format!("{key}.json"), b"{}");
                member(
                    &mut tar,
                    &format!("{key}.msgpack"),
                    &frame(id, 90).packed().unwrap(),
                );
            }
            22 => member(&mut tar, &format!("{key}.msgpack"), &vec![0xc1; 90_000]),
            23 => member(&mut tar, &format!("{key}.json"), &vec![b' '; 90_000]),
            _ => member(
                &mut tar,
                &format!("{key}.msgpack"),
                &frame(id, 90).packed().unwrap(),
            ),
        }
    }
    let mixed = tar.into_inner().unwrap();
    // Cut inside a sample's array, inside a header, and inside the padding.
    let whole = shard(40, 8, |_, _, _| {});
    let step = whole.len() / 8;
    let shards = [
        odd,
        mixed,
        whole[..3 * step + 5_000].to_vec(),
        whole[..5 * step + 100].to_vec(),
        whole[..step - 30].to_vec(),
    ];
    for (k, bytes) in shards.iter().enumerate() {
        std::fs::write(dir.path().join(format!("broken-{k:02}.tar")), bytes).unwrap();
    }
    for k in 0..shards.len() {
        let url = dir.path().join(format!("broken-{k:02}.tar"));
        let ds = Dataset::<Frame>::new(&url).unwrap().with_parallelism(1);
        let (rows, errors) = same_on_both_paths(&ds);
        assert!(errors > 0, "shard {k}: an error on both paths");
        assert!(
            rows > 0 || k == 4,
            "shard {k}: the samples before it on both paths"
        );
    }
    let all = dir.path().join("broken-{00..04}.tar");
    for threads in [1, 3] {
        let ds = Dataset::<Frame>::new(&all)
            .unwrap()
            .with_parallelism(threads);
        same_on_both_paths(&ds);
    }
}

#[test]
fn a_header_claiming_a_huge_array_costs_memory_only_as_bytes_arrive() {
    // The elements get memory in steps of 16 MiB at first, not as the header claims.
    let peak = peak_rss_of("streamed::child_a_2_gib_array_claimed_over_a_few_kb");
    assert!(peak < 64 << 20, "a 2 GiB claim took {} MiB", peak >> 20);
}

#[test]
#[ignore = "run in a child process by the memory case"]
fn child_a_2_gib_array_claimed_over_a_few_kb() {
    // After two frames (the first read by the shard's thread with the second's member, the
    // reader then handed over), an image of 2^29 elements (2 GiB) in a payload and a member
    // that claim as much, in a shard of 200 KB: the frames, then a truncated shard.
    let elements = 1u64 << 29;
    let mut image = vec![3, b'<', b'f', b'4', 3];
    for d in [elements as i64, 1, 1] {
        image.extend_from_slice(&d.to_le_bytes());
    }
    let mut payload = Vec::new();
    let mut enc = Encoder::new(&mut payload);
    enc.map_len(4).unwrap();
    enc.str("label").unwrap();
    enc.str("huge").unwrap();
    enc.str("image").unwrap();
    enc.bin_len(image.len() + 4 * elements as usize).unwrap();
    payload.extend_from_slice(&image);
    payload.extend_from_slice(&[0; 4096]);
    let claimed = payload.len() as u64 + 4 * elements + 64;
    let mut header = tar::Header::new_ustar();
    header.set_size(claimed);
    header.set_mode(0o644);
    header.set_path("000002.msgpack").unwrap();
    header.set_cksum();
    let mut bytes = shard(0, 2, |_, _, _| {});
    bytes.truncate(bytes.len() - 1024); // the end-of-archive marker
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&payload);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.tar");
    std::fs::write(&path, &bytes).unwrap();
    let ds = Dataset::<Frame>::new(&path)
        .unwrap()
        .with_max_member_bytes(claimed);
    let mut batches = ds.ordered(1).unwrap();
    for id in 0..2 {
        let batch = batches.next().unwrap().unwrap();
        assert_eq!(batch.into_samples(), [frame(id, 90)]);
    }
    let err = batches.next().unwrap().unwrap_err();
    assert!(err.to_string().contains("truncated tar archive"), "{err}");
    assert!(batches.next().is_none());
    let mut read = Vec::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    assert_eq!(read, bytes, "the shard is left as it was");
    print_peak_rss();
}

/// Shards `frames-00.tar`... of large frames (ids `ranges`, frame `bad`'s payload not msgpack)
/// in `dir`; their brace URL.
fn write_frames(dir: &std::path::Path, ranges: &[std::ops::Range<usize>], bad: usize) -> String {
    for (k, ids) in ranges.iter().enumerate() {
        let mut tar = tar::Builder::new(Vec::new());
        for id in ids.clone() {
            let payload = match id == bad {
                true => vec![0xc1; 90_000],
                false => frame(id, 90).packed().unwrap(),
            };
            member(&mut tar, &format!("{id:06}.msgpack"), &payload);
        }
        let path = dir.join(format!("frames-{k:02}.tar"));
        std::fs::write(path, tar.into_inner().unwrap()).unwrap();
    }
    let last = ranges.len() - 1;
    let url = dir.join(format!("frames-{{00..{last:02}}}.tar"));
    url.to_str().unwrap().to_owned()
}

/// The loader's batches from `state` on (`take` of them at most): each batch's keys, or its
/// error's text; and the state after them.
fn load(
    ds: &Dataset<Frame>,
    options: &LoaderOptions,
    state: Option<LoaderState>,
    take: usize,
) -> (Vec<Result<Vec<String>, String>>, LoaderState) {
    let mut loader = ds
        .loader(LoaderOptions {
            resume: state,
            ..options.clone()
        })
        .unwrap();
    let batches = loader
        .by_ref()
        .take(take)
        .map(|b| {
            let batch = b.map_err(|e| e.to_string())?;
            assert_eq!(batch.image.shape(), [batch.len(), 90, 91, 3]);
            for (key, row) in batch.keys().iter().zip(batch.samples()) {
                assert_eq!(*row, ds.get_key(key).unwrap(), "{key}");
            }
            Ok(batch.keys().iter().map(String::from).collect::<Vec<_>>())
        })
        .collect();
    (batches, loader.state())
}

#[test]
fn the_loader_reads_large_samples_of_local_shards_straight_into_their_batches() {
    let dir = tempfile::tempdir().unwrap();
    let url = write_frames(dir.path(), &[0..40, 40..80, 80..104], 50);
    let ds = Dataset::<Frame>::new(&url).unwrap();
    let options = LoaderOptions {
        global_batch: 8,
        seed: Some(3),
        partitions: 4,
        shuffle_block: 4,
        ..Default::default()
    };
    let (whole, _) = load(&ds, &options, None, usize::MAX);
    assert_eq!(whole.len(), 13);
    let failed: Vec<_> = whole.iter().filter_map(|b| b.as_ref().err()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("000050"), "{}", failed[0]);
    let mut keys: Vec<_> = whole.iter().flatten().flatten().cloned().collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 104 - 8, "every other sample once");

    // A shard gone mid-epoch stops the loader where a resumed one goes on.
    let (mut seen, state) = load(&ds, &options, None, 3);
    let moved = dir.path().join("moved.tar");
    std::fs::rename(dir.path().join("frames-01.tar"), &moved).unwrap();
    let (after, state) = load(&ds, &options, Some(state), usize::MAX);
    let (error, yielded) = after.split_last().unwrap();
    assert!(
        error.as_ref().is_err_and(|e| e.contains("frames-01")),
        "{error:?}"
    );
    assert_eq!(state.batches(), 3 + yielded.len() as u64);
    seen.extend_from_slice(yielded);
    std::fs::rename(&moved, dir.path().join("frames-01.tar")).unwrap();
    seen.extend(load(&ds, &options, Some(state), usize::MAX).0);
    assert_eq!(seen, whole);

    // A shard rewritten under its sidecar (the same sizes, other keys), or cut short: the
    // sidecar's error, read where the batch is built, and the loader stops there.
    write_frames(dir.path(), &[0..40, 1040..1080], usize::MAX);
    let cut = dir.path().join("frames-02.tar");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for seed in [Some(3), None] {
        let options = LoaderOptions {
            seed,
            ..options.clone()
        };
        let (rewritten, _) = load(&ds, &options, None, usize::MAX);
        let (error, before) = rewritten.split_last().unwrap();
        let error = error.as_ref().unwrap_err();
        assert!(error.contains("sidecar"), "{error}");
        assert!(
            before.len() < 12 && before.iter().all(Result::is_ok),
            "{seed:?}: {before:?}"
        );
    }
}

/// Shards `frames-00.tar`... written with their sidecars: each range's frames (large, or small
/// for ids in `small`), frame `bad`'s payload not msgpack, every seventh frame with a second
/// member; their brace URL.
fn write_frames_with_sidecars(
    dir: &std::path::Path,
    ranges: &[std::ops::Range<usize>],
    small: std::ops::Range<usize>,
    bad: usize,
) -> String {
    for (k, ids) in ranges.iter().enumerate() {
        let path = dir.join(format!("frames-{k:02}.tar"));
        let mut w = atdata::wds::TarWriter::create(&path).unwrap();
        for id in ids.clone() {
            let side = if small.contains(&id) { 2 } else { 90 };
            let mut sample = frame(id, side).as_wds(&format!("{id:06}"));
            if id == bad {
                sample.members[0].1 = vec![0xc1; 90_000];
            }
            if id % 7 == 3 {
                sample.members.push(("json".into(), b"{}".to_vec()));
            }
            w.write(&sample).unwrap();
        }
        w.finish().unwrap().close().unwrap();
    }
    let last = ranges.len() - 1;
    let url = dir.join(format!("frames-{{00..{last:02}}}.tar"));
    url.to_str().unwrap().to_owned()
}

/// A batch's keys and samples, or its error's text.
type BatchRead = Result<(Vec<String>, Vec<Frame>), String>;

/// Shuffled batches of `size`.
fn shuffled(url: &str, size: usize) -> Vec<BatchRead> {
    let options = atdata::wds::ShuffleOptions {
        buffer_samples: 16,
        ..atdata::wds::ShuffleOptions::seeded(5)
    };
    Dataset::<Frame>::new(url)
        .unwrap()
        .shuffled(size, options)
        .unwrap()
        .map(|b| {
            let batch = b.map_err(|e| e.to_string())?;
            Ok((
                batch.keys().iter().map(String::from).collect::<Vec<_>>(),
                batch.samples().to_vec(),
            ))
        })
        .collect()
}

#[test]
fn shuffled_reads_large_samples_of_local_shards_by_their_sidecars_as_by_their_reader() {
    // Shards of large frames with their sidecars: `shuffled` leaves those samples in the shard
    // until their batch is built (small ones, ones with a second member and a bad payload are
    // read on the shard threads). The same batches and errors as when the shards are read by
    // their reader (sidecars gone).
    let dir = tempfile::tempdir().unwrap();
    let url = write_frames_with_sidecars(dir.path(), &[0..40, 40..95, 95..120], 60..63, 50);
    let sizes = [1, 5, 32];
    let by_sidecar: Vec<_> = sizes.iter().map(|&size| shuffled(&url, size)).collect();
    for k in 0..3 {
        std::fs::remove_file(dir.path().join(format!("frames-{k:02}.idx"))).unwrap();
    }
    let by_reader: Vec<_> = sizes.iter().map(|&size| shuffled(&url, size)).collect();
    for ((size, sidecar), reader) in sizes.iter().zip(&by_sidecar).zip(&by_reader) {
        assert_eq!(sidecar, reader, "batches of {size}");
        let errors: Vec<_> = sidecar.iter().filter_map(|b| b.as_ref().err()).collect();
        assert!(errors.iter().any(|e| e.contains("000050")), "{errors:?}");
        let rows: usize = sidecar.iter().flatten().map(|(keys, _)| keys.len()).sum();
        // Every sample but the bad one, in batches of one; small frames fail larger batches.
        assert!(
            rows == 119 || (*size > 1 && rows > 0),
            "{size}: {rows} rows"
        );
    }

    // A shard rewritten under its sidecar (other keys), or with a sample after those its
    // sidecar lists, or cut short: the sidecar's error, and none of the other samples.
    let one =
        write_frames_with_sidecars(dir.path(), std::slice::from_ref(&(0..40)), 0..0, usize::MAX);
    let one = one.replace("{00..00}", "00");
    let sidecar = std::fs::read(dir.path().join("frames-00.idx")).unwrap();
    let stale = |ids: std::ops::Range<usize>, cut: bool| {
        write_frames_with_sidecars(dir.path(), std::slice::from_ref(&ids), 0..0, usize::MAX);
        std::fs::write(dir.path().join("frames-00.idx"), &sidecar).unwrap();
        if cut {
            let tar = std::fs::read(&one).unwrap();
            std::fs::write(&one, &tar[..tar.len() / 2]).unwrap();
        }
        shuffled(&one, 4)
    };
    let rewritten = stale(1000..1040, false);
    let appended = stale(0..41, false);
    let cut = stale(0..40, true);
    for (what, batches) in [
        ("rewritten", rewritten),
        ("appended", appended),
        ("cut", cut),
    ] {
        let errors: Vec<_> = batches.iter().filter_map(|b| b.as_ref().err()).collect();
        assert!(
            errors
                .iter()
                .any(|e| e.contains("sidecar") || e.contains("truncated")),
            "{what}: {errors:?}"
        );
        for (keys, rows) in batches.iter().flatten() {
            for (key, row) in keys.iter().zip(rows) {
                assert_eq!(format!("{:06}", row.id), *key, "{what}");
                assert!(row.id < 40, "{what}: only the sidecar's samples");
            }
        }
    }
}
