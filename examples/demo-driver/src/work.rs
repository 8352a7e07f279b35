//! The computations the demo's threads perform. Pure functions, so the joiner can compute
//! the expected value independently, on its own thread, and compare.

use core::ops::Range;

/// FNV-1a over the little-endian bytes of `seed` and of every number in `range`: a value
/// that depends on every input, so a thread that skipped or repeated work is caught.
pub fn checksum(seed: u64, range: Range<u32>) -> u64 {
    const OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut hash = OFFSET;
    for byte in seed.to_le_bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
    }
    for n in range {
        for byte in n.to_le_bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
        }
    }
    hash
}

/// Sum of `n * n` over `range`, by iteration (what the parallel threads do).
pub fn sum_of_squares(range: Range<u32>) -> u64 {
    range.map(|n| u64::from(n) * u64::from(n)).sum()
}

/// Sum of `n * n` for `n` in `0..end`, in closed form: `(end-1) end (2 end - 1) / 6`.
pub fn sum_of_squares_closed(end: u32) -> u64 {
    let m = u64::from(end);
    if m == 0 {
        return 0;
    }
    (m - 1) * m * (2 * m - 1) / 6
}

/// The tiny job of one benchmark/call-count cycle: cheap, but not a constant.
pub fn mix(i: u32) -> u64 {
    let x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

/// The slice `index` of `parts` equal slices of `0..end`.
pub fn slice(index: u32, parts: u32, end: u32) -> Range<u32> {
    let step = end / parts;
    let start = index * step;
    let stop = if index + 1 == parts { end } else { start + step };
    start..stop
}
