//! The loader's epoch order: a pure function of the shards' URLs and sample counts, the seed,
//! the epoch, the global batch and the order parameters (partitions, shuffle block, drop last).
//!
//! 1. The epoch's shard order: as listed (no seed), or a seeded permutation.
//! 2. The sample space: the shards' samples in that order, in `P` lanes. A batch of `m`
//!    samples takes [`share`]`(q, m, P)` samples from lane `q`, the lane's next, lane after
//!    lane. With a seed, lane `q` is the next contiguous range of the sample space, as long as
//!    the epoch's batches take from it (a rank reads only its lanes' shards). Without one, lane
//!    `q` is its slice of every run of `B` samples, so the order is the sample space's own
//!    (`ordered()`'s) whatever the number of lanes: one per rank then.
//! 3. Each lane's samples in blocks of `shuffle_block`; with a seed each block is permuted.
//!
//! So global batch `b` is lanes `0..P` laid side by side, and rank `r` of `R` (owning lanes
//! `rP/R..(r+1)P/R`) gets exactly the contiguous slice `r` of every batch, for every `R` that
//! divides `P`: the order never depends on the world size. Generators are ChaCha8 seeded from
//! (seed, epoch, stream, index), and indices are drawn by rejection sampling from its `u64`s,
//! so the order does not change with the `rand` crate's version.

use std::ops::Range;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// What decides an epoch's order besides the shard counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrderParams {
    pub global_batch: u64,
    /// `P`: the partitions of the order (a short last batch needs one sample for each).
    pub partitions: u64,
    /// The lanes the samples are laid out in: `P` with a seed; without one (when any layout
    /// gives the same order) the world size, one lane per rank, so a rank reads its slices
    /// of consecutive batches as runs as long as it can.
    pub lanes: u64,
    pub shuffle_block: u64,
    pub drop_last: bool,
    pub seed: Option<u64>,
    pub epoch: u64,
}

/// One epoch's order.
pub(crate) struct Order {
    params: OrderParams,
    /// The epoch's shard order: indices into the dataset's shard list.
    shards: Vec<usize>,
    /// Where each shard of `shards` starts in the sample space; one more entry, the total.
    starts: Vec<u64>,
    /// Where each lane starts in the sample space; one more entry, where the last ends.
    lanes: Vec<u64>,
    /// Full batches.
    full: u64,
    /// Samples of the last, short batch (0: none).
    tail: u64,
}

/// One block of a lane: the shard pieces it reads, in sample-space order.
pub(crate) struct Block {
    /// (shard index in the dataset's list, samples of that shard).
    pub pieces: Vec<(usize, Range<usize>)>,
    /// The generator that permutes it; `None` without a seed.
    pub shuffle: Option<ChaCha8Rng>,
}

/// The samples of a batch of `m` that lane `q` of `p` gives.
pub(crate) fn share(q: u64, m: u64, p: u64) -> u64 {
    let at = |q: u64| (u128::from(q) * u128::from(m) / u128::from(p)) as u64;
    at(q + 1) - at(q)
}

/// The dataset fingerprint: SHA-256 over every shard's URL and sample count, in listed order,
/// as 32 hex digits.
pub(crate) fn fingerprint(shards: &[String], counts: &[u64]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"atdata loader fingerprint v1\n");
    for (url, count) in shards.iter().zip(counts) {
        hash.update(url.as_bytes());
        hash.update(b"\n");
        hash.update(count.to_string().as_bytes());
        hash.update(b"\n");
    }
    hex::encode(&hash.finalize()[..16])
}

impl Order {
    /// The order of `params.epoch` over shards with `counts` (in the dataset's listed order).
    pub(crate) fn new(counts: &[u64], params: OrderParams) -> Order {
        let mut shards: Vec<usize> = (0..counts.len()).collect();
        if let Some(seed) = params.seed {
            permute(&mut shards, &mut generator(seed, params.epoch, 0, 0));
        }
        let mut starts = Vec::with_capacity(shards.len() + 1);
        let mut total = 0u64;
        starts.push(0);
        for &k in &shards {
            total = total.saturating_add(counts[k]);
            starts.push(total);
        }
        let b = params.global_batch;
        let full = total / b;
        let rest = total % b;
        // A short batch is kept only when every rank slice of it is non-empty for every
        // world size (at least one sample per partition); else its samples sit this epoch out.
        let tail = if params.drop_last || rest < params.partitions {
            0
        } else {
            rest
        };
        let p = params.lanes;
        let mut lanes = Vec::with_capacity(p as usize + 1);
        let mut at = 0u64;
        lanes.push(0);
        for q in 0..p {
            at += full * share(q, b, p) + share(q, tail, p);
            lanes.push(at);
        }
        Order {
            params,
            shards,
            starts,
            lanes,
            full,
            tail,
        }
    }

    /// Global batches this epoch.
    pub(crate) fn batches(&self) -> u64 {
        self.full + u64::from(self.tail > 0)
    }

    /// The size of global batch `b`.
    pub(crate) fn batch_len(&self, b: u64) -> u64 {
        if b < self.full {
            self.params.global_batch
        } else {
            self.tail
        }
    }

    /// The samples of global batch `b` that lane `q` gives.
    pub(crate) fn share(&self, q: u64, b: u64) -> u64 {
        share(q, self.batch_len(b), self.params.lanes)
    }

    /// Samples lane `q` gives before global batch `b`.
    pub(crate) fn lane_position(&self, q: u64, b: u64) -> u64 {
        let p = self.params.lanes;
        let full = b.min(self.full) * share(q, self.params.global_batch, p);
        full + if b > self.full {
            share(q, self.tail, p)
        } else {
            0
        }
    }

    /// Lanes in the layout.
    pub(crate) fn lanes(&self) -> u64 {
        self.params.lanes
    }

    /// Samples per block.
    pub(crate) fn block_len(&self) -> u64 {
        self.params.shuffle_block
    }

    /// Blocks in lane `q`.
    pub(crate) fn lane_blocks(&self, q: u64) -> u64 {
        let len = self.lanes[q as usize + 1] - self.lanes[q as usize];
        len.div_ceil(self.params.shuffle_block)
    }

    /// Block `i` of lane `q`.
    pub(crate) fn block(&self, q: u64, i: u64) -> Block {
        let lane_len = self.lanes[q as usize + 1] - self.lanes[q as usize];
        let start = i * self.params.shuffle_block;
        let end = (start + self.params.shuffle_block).min(lane_len);
        let mut pieces = Vec::new();
        for run in self.runs(q, start..end) {
            let mut j = self
                .starts
                .partition_point(|&s| s <= run.start)
                .saturating_sub(1);
            while j < self.shards.len() && self.starts[j] < run.end {
                let (from, to) = (
                    self.starts[j].max(run.start),
                    self.starts[j + 1].min(run.end),
                );
                if from < to {
                    let base = self.starts[j];
                    pieces.push((self.shards[j], (from - base) as usize..(to - base) as usize));
                }
                j += 1;
            }
        }
        let shuffle = self
            .params
            .seed
            .map(|seed| generator(seed, self.params.epoch, q + 1, i));
        Block { pieces, shuffle }
    }

    /// Where samples `positions` of lane `q` lie in the sample space, as runs.
    fn runs(&self, q: u64, positions: Range<u64>) -> Vec<Range<u64>> {
        if self.params.seed.is_some() {
            let at = self.lanes[q as usize];
            return std::iter::once(at + positions.start..at + positions.end).collect();
        }
        let (b, p) = (self.params.global_batch, self.params.lanes);
        let offset = |m: u64| (u128::from(q) * u128::from(m) / u128::from(p)) as u64;
        let per_batch = share(q, b, p);
        let head = self.full * per_batch;
        let mut runs: Vec<Range<u64>> = Vec::new();
        let mut at = positions.start;
        while at < positions.end {
            let run = if at < head {
                let (batch, t) = (at / per_batch, at % per_batch);
                let n = (per_batch - t).min(positions.end - at);
                let from = batch * b + offset(b) + t;
                from..from + n
            } else {
                let from = self.full * b + offset(self.tail) + (at - head);
                from..from + (positions.end - at)
            };
            at += run.end - run.start;
            match runs.last_mut() {
                Some(last) if last.end == run.start => last.end = run.end,
                _ => runs.push(run),
            }
        }
        runs
    }
}

/// A generator for `stream` (0: the shard order; `q + 1`: lane `q`'s blocks), `index`.
fn generator(seed: u64, epoch: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut bytes = [0u8; 32];
    for (i, v) in [seed, epoch, stream, index].iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    ChaCha8Rng::from_seed(bytes)
}

/// An unbiased draw from `0..n` (`n > 0`).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let limit = u64::MAX - u64::MAX % n;
    loop {
        let v = rng.next_u64();
        if v < limit {
            return v % n;
        }
    }
}

/// Fisher-Yates with `rng`.
pub(crate) fn permute<U>(items: &mut [U], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(b: u64, p: u64, seed: Option<u64>) -> OrderParams {
        OrderParams {
            global_batch: b,
            partitions: p,
            lanes: p,
            shuffle_block: 7,
            drop_last: false,
            seed,
            epoch: 0,
        }
    }

    /// Every sample-space position each lane reads, in lane order.
    fn lane_positions(order: &Order, q: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for i in 0..order.lane_blocks(q) {
            for (k, range) in order.block(q, i).pieces {
                let j = order.shards.iter().position(|&s| s == k).unwrap();
                out.extend(range.map(|s| order.starts[j] + s as u64));
            }
        }
        out
    }

    #[test]
    fn shares_add_up_to_the_batch_and_align_with_rank_slices() {
        for (m, p) in [(64, 8), (100, 8), (5, 8), (8, 8), (3, 1), (96, 16)] {
            let shares: Vec<u64> = (0..p).map(|q| share(q, m, p)).collect();
            assert_eq!(shares.iter().sum::<u64>(), m);
            for r in [1, 2, 4, 8]
                .into_iter()
                .filter(|r| p % r == 0 && m % r == 0)
            {
                for rank in 0..r {
                    let lanes = (rank * p / r) as usize..((rank + 1) * p / r) as usize;
                    assert_eq!(
                        shares[lanes].iter().sum::<u64>(),
                        m / r,
                        "m {m} p {p} r {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn lanes_cover_the_kept_samples_once() {
        for (counts, b, p) in [
            (vec![10, 0, 3, 25], 8, 4),
            (vec![1000; 9], 64, 8),
            (vec![5], 64, 8),
            (vec![33, 1], 4, 8),
        ] {
            for seed in [None, Some(3)] {
                let order = Order::new(&counts, params(b, p, seed));
                let mut seen: Vec<u64> = (0..p).flat_map(|q| lane_positions(&order, q)).collect();
                let kept = order.full * b + order.tail;
                assert_eq!(seen.len() as u64, kept);
                seen.sort_unstable();
                assert_eq!(seen, (0..kept).collect::<Vec<_>>());
                for q in 0..p {
                    assert_eq!(
                        order.lane_position(q, order.batches()),
                        lane_positions(&order, q).len() as u64
                    );
                }
            }
        }
    }

    #[test]
    fn without_a_seed_the_lanes_laid_side_by_side_are_the_sample_space() {
        // (counts, global batch, partitions, lanes): any layout gives the same order.
        let cases = [
            (vec![10, 0, 3, 25], 8, 4, 4),
            (vec![10, 0, 3, 25], 8, 4, 2),
            (vec![70], 64, 8, 8),
            (vec![70], 64, 8, 2),
            (vec![9], 4, 8, 1),
        ];
        for (counts, b, p, lanes) in cases {
            let order = Order::new(
                &counts,
                OrderParams {
                    lanes,
                    ..params(b, p, None)
                },
            );
            let lanes: Vec<Vec<u64>> = (0..lanes).map(|q| lane_positions(&order, q)).collect();
            let mut global = Vec::new();
            for batch in 0..order.batches() {
                for (q, lane) in lanes.iter().enumerate() {
                    let from = order.lane_position(q as u64, batch) as usize;
                    let to = order.lane_position(q as u64, batch + 1) as usize;
                    global.extend_from_slice(&lane[from..to]);
                }
            }
            let kept = order.full * b + order.tail;
            assert_eq!(
                global,
                (0..kept).collect::<Vec<_>>(),
                "{counts:?} b {b} p {p}"
            );
        }
    }

    #[test]
    fn a_short_batch_is_kept_only_with_a_sample_per_partition() {
        assert_eq!(Order::new(&[70], params(64, 8, None)).batches(), 1);
        assert_eq!(Order::new(&[72], params(64, 8, None)).batches(), 2);
        let mut drop = params(64, 8, None);
        drop.drop_last = true;
        assert_eq!(Order::new(&[72], drop).batches(), 1);
    }

    #[test]
    fn draws_are_fixed_by_the_seed() {
        let mut a = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        permute(&mut a, &mut generator(7, 0, 1, 0));
        let mut b = (0..10).collect::<Vec<_>>();
        permute(&mut b, &mut generator(7, 0, 1, 0));
        assert_eq!(a, b);
        let mut c = (0..10).collect::<Vec<_>>();
        permute(&mut c, &mut generator(7, 1, 1, 0));
        assert_ne!(a, c);
    }

    #[test]
    fn the_fingerprint_covers_urls_and_counts() {
        let urls = ["a.tar".to_owned(), "b.tar".to_owned()];
        let f = fingerprint(&urls, &[1, 2]);
        assert_eq!(f.len(), 32);
        assert_ne!(f, fingerprint(&urls, &[1, 3]));
        assert_ne!(f, fingerprint(&urls[..1], &[1]));
        assert_eq!(f, fingerprint(&urls, &[1, 2]));
    }
}
