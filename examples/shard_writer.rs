//! Shards with `atdata-wds` alone (no store, no index, no async runtime): write samples into
//! size- and count-limited shards, then read them back in order and by rank.
//!
//! Its dependencies are `atdata-codec`, `atdata-derive` and `atdata-wds`, to show that each
//! layer works without the ones above it. Run with `cargo run --example shard_writer`; with
//! a directory argument (`-- DIR`) it also writes gzip shards there and keeps them (the
//! Python interop script reads them with Python atdata).

use atdata_codec::Packable;
use atdata_derive::packable;
use atdata_wds::{Dataset, ShardOptions, ShardWriter};

/// A caption and its token ids.
#[packable(crate = "atdata_codec")]
#[derive(Debug, Clone, PartialEq)]
struct Caption {
    text: String,
    tokens: Vec<i32>,
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("atdata-shard-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pattern = dir.join("captions-%06d.tar");
    let options = ShardOptions {
        maxcount: 250,
        maxsize: 16 << 10, // 16 KiB of payload per shard, whichever limit comes first
        ..Default::default()
    };
    let mut writer =
        ShardWriter::new(pattern.to_str().expect("a UTF-8 temp dir"), options.clone())?;
    for i in 0..1_000 {
        let caption = Caption {
            text: format!("caption number {i}"),
            tokens: (0..i % 7).collect(),
        };
        writer.write(&caption.as_wds(&format!("{i:06}")))?;
    }
    let shards = writer.finish()?;
    println!("wrote {} shards to {}", shards.len(), dir.display());

    let url = dir.join(format!("captions-{{000000..{:06}}}.tar", shards.len() - 1));
    let ds = Dataset::<Caption>::new(url.to_str().expect("a UTF-8 temp dir"))?;
    let first = ds.samples()?.next().expect("a sample")?;
    println!("first: {first:?}");
    let total = ds.samples()?.count();
    // Two ranks see disjoint halves of the shards.
    let rank0 = ds.split(0, 2)?.samples()?.count();
    let rank1 = ds.split(1, 2)?.samples()?.count();
    println!("{total} samples; rank 0 reads {rank0}, rank 1 reads {rank1}");
    assert_eq!(rank0 + rank1, total);
    std::fs::remove_dir_all(&dir)?;

    // The same captions as gzip shards, kept in a folder the caller names.
    if let Some(keep) = std::env::args().nth(1) {
        let pattern = std::path::Path::new(&keep).join("captions-%06d.tar.gz");
        let mut writer = ShardWriter::new(pattern.to_str().expect("a UTF-8 path"), options)?;
        for i in 0..1_000 {
            let caption = Caption {
                text: format!("caption number {i}"),
                tokens: (0..i % 7).collect(),
            };
            writer.write(&caption.as_wds(&format!("{i:06}")))?;
        }
        println!("kept {} gzip shards in {keep}", writer.finish()?.len());
    }
    Ok(())
}
