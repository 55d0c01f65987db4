//! Content-defined chunking with cut points on 4 KiB boundaries (engine format v2, issue 10;
//! not yet used by the write path).
//!
//! Disk images and the filesystems inside them are 4 KiB-aligned: a file that grows by a few
//! blocks shifts everything after it by a multiple of 4 KiB, and fixed 1 MiB chunks then
//! share nothing. Cutting only where the content says so — and only at 4 KiB boundaries of
//! the stream — finds those shifted runs again, while keeping every chunk a whole number of
//! blocks (aligned reads, and zero blocks recognisable as such).
//!
//! The decision at a boundary looks at the 64 bytes before it (the last 64 bytes of the
//! block that ends there), hashed as eight words with a multiply-xorshift mix: a cost of 64
//! bytes per 4 KiB, so chunking stays far from the ingest limit (MD5 + SHA-512). A cut is
//! taken when the hash falls under a threshold chosen for the wanted average, never before
//! `min` bytes into a chunk and always at `max`. Where a run of all-zero blocks starts or
//! ends there is always a cut: sparse regions of an image become chunks of zeros (stored as
//! nothing) instead of padding the data chunks next to them.

/// The granularity of cut points: one filesystem block.
pub const BLOCK: usize = 4096;

/// Bytes before a boundary that decide it.
const WINDOW: usize = 64;

/// Chunk size bounds, all multiples of [`BLOCK`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CdcParams {
    pub min: usize,
    pub avg: usize,
    pub max: usize,
}

impl CdcParams {
    /// Average 16 KiB, from 4 KiB to 256 KiB.
    pub const DEFAULT: CdcParams = CdcParams {
        min: BLOCK,
        avg: 16 * 1024,
        max: 256 * 1024,
    };

    /// Checks the bounds: block multiples, min ≤ avg ≤ max, min > 0.
    pub fn validate(self) -> Result<CdcParams, String> {
        let aligned = |n: usize| n > 0 && n.is_multiple_of(BLOCK);
        if !(aligned(self.min) && aligned(self.avg) && aligned(self.max)) {
            return Err(format!(
                "chunk sizes must be multiples of {BLOCK}: {self:?}"
            ));
        }
        if !(self.min <= self.avg && self.avg <= self.max) {
            return Err(format!("need min <= avg <= max: {self:?}"));
        }
        Ok(self)
    }

    /// The probability threshold (out of 2^64) of a cut at one boundary past `min`: the
    /// expected chunk is min + BLOCK / p.
    fn threshold(self) -> u64 {
        let extra_blocks = ((self.avg - self.min) / BLOCK).max(1) as u128;
        (((1u128 << 64) - 1) / extra_blocks) as u64
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Hash of the 64 bytes before a boundary.
fn window_hash(w: &[u8; WINDOW]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for word in w.chunks_exact(8) {
        let v = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        h = mix(h ^ v);
    }
    h
}

/// Finds cut points in a stream fed in pieces of any size: the same bytes give the same
/// cuts however they are split.
pub struct Chunker {
    params: CdcParams,
    threshold: u64,
    /// Bytes of the stream seen so far.
    offset: u64,
    /// Where the current chunk started.
    chunk_start: u64,
    /// The last bytes seen (for the window at the next boundary).
    tail: [u8; WINDOW],
    /// Whether the block being fed so far holds a non-zero byte.
    block_nonzero: bool,
    /// Whether the previous whole block was all zeros (`None` at the start of the stream).
    prev_zero: Option<bool>,
}

impl Chunker {
    pub fn new(params: CdcParams) -> Chunker {
        Chunker {
            threshold: params.threshold(),
            params,
            offset: 0,
            chunk_start: 0,
            tail: [0; WINDOW],
            block_nonzero: false,
            prev_zero: None,
        }
    }

    /// Feeds the next bytes; appends to `cuts` the stream offsets where a chunk ends
    /// (exclusive) within them. The last chunk ends at the end of the stream, which the
    /// caller knows.
    pub fn feed(&mut self, mut data: &[u8], cuts: &mut Vec<u64>) {
        while !data.is_empty() {
            // Up to the next block boundary.
            let to_boundary = BLOCK - (self.offset % BLOCK as u64) as usize;
            let take = to_boundary.min(data.len());
            let (piece, rest) = data.split_at(take);
            self.remember(piece);
            self.block_nonzero |= piece.iter().fold(0u8, |acc, &b| acc | b) != 0;
            self.offset += take as u64;
            data = rest;
            if take == to_boundary {
                self.end_of_block(cuts);
            }
        }
    }

    /// At the end of a whole block: cuts where zero blocks start or stop (so a run of zero
    /// blocks is a chunk of its own, stored as nothing, and never pads a data chunk), then
    /// where the content says.
    fn end_of_block(&mut self, cuts: &mut Vec<u64>) {
        let zero = !std::mem::take(&mut self.block_nonzero);
        let block_start = self.offset - BLOCK as u64;
        if self.prev_zero.is_some_and(|p| p != zero) && block_start > self.chunk_start {
            cuts.push(block_start);
            self.chunk_start = block_start;
        }
        self.prev_zero = Some(zero);
        if self.cut_here() {
            cuts.push(self.offset);
            self.chunk_start = self.offset;
        }
    }

    fn remember(&mut self, piece: &[u8]) {
        if piece.len() >= WINDOW {
            self.tail.copy_from_slice(&piece[piece.len() - WINDOW..]);
        } else {
            self.tail.copy_within(piece.len().., 0);
            self.tail[WINDOW - piece.len()..].copy_from_slice(piece);
        }
    }

    /// At a block boundary: whether the chunk ends here.
    fn cut_here(&self) -> bool {
        let len = (self.offset - self.chunk_start) as usize;
        if len < self.params.min {
            return false;
        }
        len >= self.params.max || window_hash(&self.tail) <= self.threshold
    }
}

/// The chunks of a whole buffer, as (offset, length).
pub fn chunks(data: &[u8], params: CdcParams) -> Vec<(u64, usize)> {
    let mut c = Chunker::new(params);
    let mut cuts = Vec::new();
    c.feed(data, &mut cuts);
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0u64;
    for cut in cuts {
        out.push((start, (cut - start) as usize));
        start = cut;
    }
    if (start as usize) < data.len() {
        out.push((start, data.len() - start as usize));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = mix(x.wrapping_add(0x9e37_79b9_7f4a_7c15));
                x as u8
            })
            .collect()
    }

    #[test]
    fn cuts_are_aligned_and_bounded() {
        let data = noise(8 << 20, 1);
        let p = CdcParams::DEFAULT;
        let all = chunks(&data, p);
        assert_eq!(all.iter().map(|c| c.1).sum::<usize>(), data.len());
        for (i, (off, len)) in all.iter().enumerate() {
            assert_eq!(off % BLOCK as u64, 0);
            assert!(*len <= p.max);
            if i + 1 < all.len() {
                assert!(*len >= p.min && len.is_multiple_of(BLOCK));
            }
        }
        let avg = data.len() / all.len();
        assert!((12 << 10..=24 << 10).contains(&avg), "average {avg}");
    }

    #[test]
    fn the_same_bytes_cut_the_same_however_they_are_fed() {
        let data = noise(1 << 20, 2);
        let whole = chunks(&data, CdcParams::DEFAULT);
        for piece in [1, 63, 64, 65, 4095, 4096, 10_000] {
            let mut c = Chunker::new(CdcParams::DEFAULT);
            let mut cuts = Vec::new();
            for p in data.chunks(piece) {
                c.feed(p, &mut cuts);
            }
            let ends: Vec<u64> = whole.iter().map(|(o, l)| o + *l as u64).collect();
            assert_eq!(cuts, ends[..cuts.len()].to_vec(), "pieces of {piece}");
        }
    }

    #[test]
    fn blocks_inserted_early_leave_later_chunks_shared() {
        // Release B = A with 12 KiB inserted 1 MiB in: fixed chunks after the insertion all
        // change; content-defined ones resynchronise within a chunk or two.
        let a = noise(16 << 20, 3);
        let mut b = a[..1 << 20].to_vec();
        b.extend_from_slice(&noise(3 * BLOCK, 4));
        b.extend_from_slice(&a[1 << 20..]);
        let p = CdcParams::DEFAULT;
        let ids = |d: &[u8]| -> HashSet<Vec<u8>> {
            chunks(d, p)
                .iter()
                .map(|(o, l)| d[*o as usize..*o as usize + l].to_vec())
                .collect()
        };
        let (ca, cb) = (ids(&a), ids(&b));
        let shared: usize = cb.intersection(&ca).map(Vec::len).sum();
        assert!(
            shared as f64 > 0.97 * a.len() as f64,
            "only {shared} of {} bytes shared",
            a.len()
        );
    }

    #[test]
    fn zero_runs_are_chunks_of_their_own() {
        // data (5 blocks + 100 bytes) | zeros (7 blocks, from the next boundary) | data
        let mut d = noise(5 * BLOCK + 100, 5);
        d.resize(13 * BLOCK, 0);
        d.extend_from_slice(&noise(20 * BLOCK, 6));
        let p = CdcParams::DEFAULT;
        let all = chunks(&d, p);
        let zero: Vec<(u64, usize)> = all
            .iter()
            .copied()
            .filter(|(o, l)| d[*o as usize..*o as usize + l].iter().all(|&b| b == 0))
            .collect();
        assert_eq!(
            zero.iter().map(|c| c.1).sum::<usize>(),
            7 * BLOCK,
            "{all:?}"
        );
        assert!(zero.iter().all(|(o, _)| *o >= 6 * BLOCK as u64));
        // The same data after the zeros cuts the same wherever the zeros started.
        let mut e = noise(2 * BLOCK, 7);
        e.resize(13 * BLOCK, 0);
        e.extend_from_slice(&d[13 * BLOCK..]);
        let tail = |v: &[(u64, usize)]| -> Vec<(u64, usize)> {
            v.iter()
                .copied()
                .filter(|(o, _)| *o >= 13 * BLOCK as u64)
                .collect()
        };
        assert_eq!(tail(&all), tail(&chunks(&e, p)));
        // Long zero runs are cut at `max` at the latest.
        let z = vec![0u8; 3 * p.max + BLOCK];
        assert!(chunks(&z, p).iter().all(|c| c.1 <= p.max));
    }

    #[test]
    fn bad_bounds_are_refused() {
        for p in [
            CdcParams {
                min: 1000,
                avg: 16384,
                max: 65536,
            },
            CdcParams {
                min: 8192,
                avg: 4096,
                max: 65536,
            },
            CdcParams {
                min: 0,
                avg: 4096,
                max: 8192,
            },
        ] {
            assert!(p.validate().is_err(), "{p:?}");
        }
        assert!(CdcParams::DEFAULT.validate().is_ok());
    }
}
