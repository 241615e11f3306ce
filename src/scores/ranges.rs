//! Longest-prefix match as disjoint ranges under a small radix index whose leaves are cache
//! lines.
//!
//! Networks nest or are disjoint, so a set of networks with scores is the same thing as a
//! sorted list of disjoint address ranges, each with the score of the longest network holding
//! it (or none). A lookup is then "the last range that starts at or below the address". Found by
//! binary search over a million ranges, that is some twenty dependent memory reads, and on the
//! build machine a read that misses the caches costs 150 to 300 ns: too slow for the 100 ns
//! goal. So the ranges sit under an index that jumps to the answer in a few reads, each of a
//! cache line that lookups share as much as they can:
//!
//! - a node splits the addresses it covers into buckets of 2^shift addresses (about one bucket
//!   per range, up to 2^18 at the IPv4 root and 2^16 at the IPv6 one: 1 MiB of slots
//!   each), aligned on their size;
//! - a bucket that lies inside one range holds that range's score itself (most misses, and
//!   hits inside wide networks, end there);
//! - IPv6 slots are 16 bytes, and a bucket whose ranges are one network inside the range
//!   around it (or one range starting in it) holds them in its slot itself: the network's
//!   offset in the bucket and size, and the scores before, inside and after it ([`NET`]). In
//!   a table clustered as real IPv6 lists are, most networks are alone in their bucket, so
//!   most IPv6 hits end in a slot;
//! - a bucket over a few ranges points to a [`Block`]: those ranges' starts and scores in one
//!   to four 16-byte granules of a cache line (a block never spans two lines, and the lines
//!   are shared: a block of two /64s takes two granules, so two share a line). The starts are stored as offsets in the
//!   bucket, shifted right by the zero bits they share and cut to as few 32-bit words as the
//!   largest needs, so a block holds 3 to 12 IPv6 starts (12 for networks of /64 or shorter
//!   in a bucket of 2^96 addresses, 3 for single addresses in a wide bucket); IPv4 leaves are
//!   runs of 16 sorted starts instead ([`Key::LEAF`]);
//! - a bucket over more ranges than fit in a block holds a child node, whose span is narrowed
//!   to the starts it holds (so a cluster of networks deep in IPv6 space costs no empty levels).
//!
//! A lookup that ends in a block reads the root's slot, each child's header and slot and one
//! block line. These reads wait for each other, and each that misses the caches costs a memory
//! latency, so a child's slot is read together with its header, not after it: the slot that
//! points to a child also says how wide its buckets are and how many, and the child's buckets
//! start at a multiple of their whole span, so the key's own bits give its bucket (a
//! [`DIRECT`] child; a child whose ranges do not fit so is read header first). An IPv6 cell
//! keeps a direct child's place in its second word, so any IPv6 child can be direct; an IPv4
//! slot has 19 bits for it, which reach the first 32 MiB of the index (some 8 million IPv4
//! ranges): children placed past that are read header first. An IPv6 hit
//! that ends in a [`NET`] slot reads the root's slot (in cache: few of its lines are used)
//! and the child's header and slot, at once: one read that can miss the caches, where a block
//! adds a second. The ranges themselves are only needed to build the index and are dropped
//! afterwards.
//!
//! Measured in `benches/scores.rs` against tree bitmaps (`prefix-trie` 0.10, `ip_network_table`),
//! a binary trie (`prefix-trie` 0.9), an LC-trie (`iptrie`) and plain binary search over these
//! same ranges, on 1,000,000 prefixes: README, "Scores from CIDR lists", has the numbers.

use std::fmt::Debug;

use bytemuck::Pod;

use super::pages::{Filling, Memory, Pages, HUGE_MIN};

// The shape below was chosen by timing variants side by side, interleaved, on 1,000,000
// synthetic prefixes (`benches/scores.rs`).

/// Buckets of a child node, at most, as a power of two (below both roots' bits: a child is
/// [`DIRECT`] only below the root).
const CHILD_BITS: u32 = 14;

/// The largest [`Key::LEAF`].
const MAX_LEAF: usize = 16;

/// A slot holding a child node's index.
const CHILD: u32 = 1 << 31;
/// With [`CHILD`]: the slot also holds the child's bucket size and count, so that the child's
/// slot is read at once with its header, not after it: the child's `lo` is aligned on its
/// buckets' whole span, its first word on a [`LINE`], and the slot is `CHILD | DIRECT |
/// shift << DIRECT_SHIFT | bits << DIRECT_BITS | offset / LINE` (2^bits buckets of 2^shift
/// keys). A 4-word (IPv6) cell keeps `offset / LINE` in its second word instead, so its
/// direct children can be anywhere in the index; a 1-word (IPv4) cell's reach ends at
/// [`DIRECT_LINES`]. The same bit as [`SCORE`], which only a slot without [`CHILD`] has.
const DIRECT: u32 = 1 << 30;
/// Where a [`DIRECT`] slot holds its child's bucket size (7 bits, below [`DIRECT`]).
const DIRECT_SHIFT: u32 = 23;
/// Where a [`DIRECT`] slot holds its child's bucket count (4 bits); below them, the child's
/// offset in [`LINE`]s.
const DIRECT_BITS: u32 = 19;
/// The lines a 1-word [`DIRECT`] slot reaches (the first 32 MiB of the index); a child placed
/// later is pointed to header first. Lowered to 64 KiB in tests, so that their tables go past
/// it: an IPv6 root of 2^16 cells alone takes 1 MiB, and its children must still be direct.
#[cfg(not(test))]
const DIRECT_LINES: usize = 1 << DIRECT_BITS;
#[cfg(test)]
const DIRECT_LINES: usize = 1 << 10;
/// Words in a cache line: where a [`DIRECT`] child starts.
const LINE: usize = 16;
// A direct child's bits (up to `CHILD_BITS + 1`) take 4 bits of its slot.
const _: () = assert!(CHILD_BITS < 15);
/// A slot holding a score directly (the bucket lies inside one range).
const SCORE: u32 = 1 << 30;
/// With [`Key::CELL`] of 4 words, a slot (neither [`CHILD`] nor [`SCORE`]) holding the ranges
/// of its bucket itself when they are one network inside the range around it, or one range
/// starting inside the bucket: the network's first key as an offset in the bucket shifted
/// right by its `size` bits (a power of two; the offset is a multiple of it) in words 1 to 3,
/// least significant first; in word 0 `NET | size << NET_SIZE` and the scores before, inside
/// and after it, 7 bits each ([`NONE`] as 127), most significant first. A lookup that ends
/// here reads no block: one read less. Below it, a slot holding a [`Block`]'s granule.
const NET: u32 = 1 << 29;
/// Where a [`NET`] slot holds its network's size, as a power of two (7 bits).
const NET_SIZE: u32 = 21;
/// A [`NET`] slot's score bits: 0..=100, and 127 for [`NONE`].
const NET_NONE: u32 = 127;
/// The score of a range that no network covers.
pub const NONE: u8 = u8::MAX;

/// An address as an unsigned integer: `u32` for IPv4, `u128` for IPv6.
pub trait Key: Copy + Ord + Debug + Default + Pod {
    /// `self - other`, for `self >= other`.
    fn minus(self, other: Self) -> Self;
    /// `self >> shift` as an index, for `shift` below the key's bits (the caller keeps the
    /// index below 2^32).
    fn bucket(self, shift: u32) -> usize;
    /// `b << shift` as a key.
    fn from_bucket(b: usize, shift: u32) -> Self;
    /// `self + other`, saturating at the largest key.
    fn plus(self, other: Self) -> Self;
    /// Bits needed to write `self` (0 for 0).
    fn width(self) -> u32;
    /// One less (for `self > 0`).
    fn pred(self) -> Self;
    /// One more, or `None` past the largest key.
    fn succ(self) -> Option<Self>;
    /// The last key of the network of `len` bits starting at `self`.
    fn last(self, len: u8) -> Self;
    /// `self` with its low `shift` bits cleared.
    fn align(self, shift: u32) -> Self;
    /// The low `shift` bits of `self`: its offset in its bucket of 2^shift keys, for `shift`
    /// below the key's bits (a node's buckets are smaller than the key space).
    fn low(self, shift: u32) -> u128;
    /// `u32` words a key takes in the index.
    const WORDS: usize;
    /// Ranges a leaf holds, when leaves are runs of the sorted starts (IPv4: 16 starts, one
    /// cache line); 0 when leaves are [`Block`]s (IPv6: a run of 16-byte starts would take
    /// two lines, and their scores a third).
    const LEAF: usize;
    /// Buckets per range in a node, as a power of two above one per four ranges (2: about one
    /// per range): more buckets hold a score directly and fewer need a child node.
    const BUCKETS: u32;
    /// `u32` words of a bucket's slot: 1, or 4 where a slot can hold one network in its bucket
    /// itself ([`NET`]).
    const CELL: usize;
    /// Buckets of the root node, at most, as a power of two (1 MiB of slots).
    const ROOT_BITS: u32;
    /// The key stored at `words[..WORDS]`, least significant word first (so that reading it
    /// is one load on a little-endian machine).
    fn read(words: &[u32]) -> Self;
    /// Appends the key's words.
    fn write(self, out: &mut Vec<u32>);
    /// Sorts networks by first key, then length (the longer inside the shorter), then
    /// [`Span::order`] (the later of two equal networks last).
    fn sort(spans: &mut Vec<Span<Self>>);
}

macro_rules! key {
    ($t:ty, $leaf:expr, $buckets:expr, $cell:expr, $root:expr, $sort:path) => {
        impl Key for $t {
            const WORDS: usize = std::mem::size_of::<$t>() / 4;
            const LEAF: usize = $leaf;
            const BUCKETS: u32 = $buckets;
            const CELL: usize = $cell;
            const ROOT_BITS: u32 = $root;
            fn sort(spans: &mut Vec<Span<Self>>) {
                $sort(spans)
            }
            #[inline(always)]
            fn read(words: &[u32]) -> Self {
                words[..Self::WORDS]
                    .iter()
                    .enumerate()
                    .fold(0, |k, (i, &w)| {
                        k | <$t>::from(w).checked_shl(32 * i as u32).unwrap_or(0)
                    })
            }
            fn write(self, out: &mut Vec<u32>) {
                for i in 0..Self::WORDS {
                    out.push((self.checked_shr(32 * i as u32).unwrap_or(0)) as u32);
                }
            }
            #[inline(always)]
            fn minus(self, other: Self) -> Self {
                self - other
            }
            #[inline(always)]
            fn bucket(self, shift: u32) -> usize {
                debug_assert!(shift < <$t>::BITS);
                (self >> (shift & (<$t>::BITS - 1))) as usize
            }
            fn from_bucket(b: usize, shift: u32) -> Self {
                (b as $t).checked_shl(shift).unwrap_or(0)
            }
            fn plus(self, other: Self) -> Self {
                self.saturating_add(other)
            }
            fn width(self) -> u32 {
                <$t>::BITS - self.leading_zeros()
            }
            fn pred(self) -> Self {
                self - 1
            }
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
            fn last(self, len: u8) -> Self {
                self | <$t>::MAX.checked_shr(u32::from(len)).unwrap_or(0)
            }
            fn align(self, shift: u32) -> Self {
                self & <$t>::MAX.checked_shl(shift).unwrap_or(0)
            }
            #[inline(always)]
            fn low(self, shift: u32) -> u128 {
                debug_assert!(shift < <$t>::BITS);
                u128::from(self & (1 as $t).wrapping_shl(shift).wrapping_sub(1))
            }
        }
    };
}

key!(u32, 16, 2, 1, 18, radix_sort);
key!(u128, 0, 2, 4, 16, comparison_sort);

/// [`Key::sort`] by comparisons, in place.
fn comparison_sort<K: Key>(spans: &mut [Span<K>]) {
    spans.sort_unstable_by_key(|s| (s.first, s.len, s.order));
}

/// [`Key::sort`] of IPv4 networks, by their 40-bit key (address, length) a digit of
/// [`RADIX_BITS`] at a time, least significant first: four passes that each read and write
/// the spans once (a comparison sort reads them some twenty times), into a second array as
/// large. Each pass keeps the order of equal digits, so equal networks stay in file order.
fn radix_sort(spans: &mut Vec<Span<u32>>) {
    const DIGITS: usize = 40usize.div_ceil(RADIX_BITS as usize);
    let key = |s: &Span<u32>| u64::from(s.first) << 8 | u64::from(s.len);
    let digit =
        |s: &Span<u32>, d: usize| (key(s) >> (RADIX_BITS as usize * d)) as usize & RADIX_MASK;
    let mut counts = vec![[0usize; 1 << RADIX_BITS]; DIGITS];
    for s in spans.iter() {
        for (d, count) in counts.iter_mut().enumerate() {
            count[digit(s, d)] += 1;
        }
    }
    let mut from = std::mem::take(spans);
    let mut to: Vec<Span<u32>> = Vec::new();
    for (d, count) in counts.iter().enumerate() {
        // A digit all spans share moves nothing.
        if count.contains(&from.len()) {
            continue;
        }
        let mut next = [0usize; 1 << RADIX_BITS];
        let mut sum = 0;
        for (next, &count) in next.iter_mut().zip(count.iter()) {
            *next = sum;
            sum += count;
        }
        to.resize(from.len(), Span::new(0, 0, 0));
        for s in &from {
            let b = digit(s, d);
            to[next[b]] = *s;
            next[b] += 1;
        }
        std::mem::swap(&mut from, &mut to);
    }
    *spans = from;
}

/// Bits of the key [`radix_sort`] sorts on in one pass (1,024 counters: they stay in cache).
const RADIX_BITS: u32 = 10;
const RADIX_MASK: usize = (1 << RADIX_BITS) - 1;

/// Where the child node a [`CHILD`] cell points to starts in [`Ranges::index`]: its slot
/// (first word) and, in a 4-word cell, its second word.
#[inline(always)]
fn child_at<K: Key>(slot: u32, second: u32) -> usize {
    match slot & DIRECT != 0 {
        true if K::CELL == 4 => second as usize * LINE,
        true => (slot & ((1 << DIRECT_BITS) - 1)) as usize * LINE,
        false => (slot & !CHILD) as usize,
    }
}

/// Layout of an index node in [`Ranges::index`], in `u32` words: the node's buckets start at
/// `lo` (a multiple of their size, 2^shift) and end before `hi`; keys below `lo` score `below`,
/// keys at or above `hi` score `above`. Header and slots are contiguous, so a level of the index
/// costs one memory read where it can (the header and the slot share a cache line for small
/// nodes).
const SHIFT: usize = 0;
const BELOW: usize = 1;
const ABOVE: usize = 2;
const LO: usize = 3;

/// The header of the node at `at` in `index`: one bounds check for all its fields.
#[inline(always)]
fn header<K: Key>(index: &[u32], at: usize) -> &[u32] {
    &index[at..at + slots_at::<K>()]
}

/// Where a node's slots start: after its header, on a whole [`Key::CELL`] (a 4-word slot never
/// spans two cache lines).
#[inline(always)]
const fn slots_at<K: Key>() -> usize {
    (LO + 2 * K::WORDS).next_multiple_of(K::CELL)
}
/// `u32` words of range starts in a [`Block`], at most.
const BLOCK_WORDS: usize = 12;
/// Words in a granule: blocks start and end on 16-byte boundaries.
const GRANULE: usize = 4;
/// Lines the build keeps open for blocks to fill ([`Tree::place`]).
const OPEN_LINES: usize = 4;

/// A leaf of the index: the ranges of one bucket in one to four 16-byte granules of a cache
/// line. The first range is the one holding the bucket's first key; each of the others starts
/// at its offset in the bucket. In `u32` words (the first ones also read as bytes):
///
/// - byte 0: `len` (ranges after the first, up to 12) and `width - 1` above it (words per
///   start, 1 to 4); byte 1: `zeros`, the low zero bits the starts' offsets share, shifted out;
/// - bytes 2 to `len + 2`: the scores of ranges 0..=len;
/// - from word [`Block::head`]`(len)`: the starts of ranges 1..=len, `width` words each, most
///   significant first.
///
/// A bucket with one network alone in it needs no block (its slot holds it, [`NET`]); blocks
/// hold two networks or more: two /64s in a bucket take two granules, two single addresses
/// three or four.
#[derive(Clone, Copy, Debug)]
struct Block {
    words: [u32; LINE],
    /// Words used, a multiple of [`GRANULE`].
    size: usize,
}

impl Block {
    /// The block of ranges whose starts after the first are at `offsets` (ascending, none 0)
    /// in the bucket, with `scores` (one more than `offsets`); `None` if they do not fit.
    fn new(offsets: &[u128], scores: &[u8]) -> Option<Block> {
        let zeros = offsets
            .iter()
            .map(|o| o.trailing_zeros())
            .min()
            .unwrap_or(0);
        let largest = offsets.last().map_or(0, |&o| o >> zeros);
        let width = (128 - largest.leading_zeros()).div_ceil(32).max(1) as usize;
        let len = offsets.len();
        if len > BLOCK_WORDS / width || scores.len() != len + 1 {
            return None;
        }
        let head = Block::head(len);
        let mut words = [0u32; LINE];
        {
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut words[..head]);
            bytes[0] = len as u8 | ((width - 1) as u8) << 4;
            bytes[1] = zeros as u8;
            bytes[2..2 + scores.len()].copy_from_slice(scores);
        }
        for (k, &o) in offsets.iter().enumerate() {
            let v = o >> zeros;
            for w in 0..width {
                words[head + k * width + w] = (v >> (32 * (width - 1 - w))) as u32;
            }
        }
        Some(Block {
            words,
            size: Block::size(&words),
        })
    }

    /// The header of the block that `block` starts with: `len`, `width` and `zeros`. Read as
    /// bytes, as [`Block::new`] writes it, so the layout is the same on every byte order.
    #[inline(always)]
    fn header(block: &[u32]) -> (usize, usize, u32) {
        let bytes: &[u8] = bytemuck::cast_slice(&block[..1]);
        (
            usize::from(bytes[0] & 0xf),
            usize::from((bytes[0] >> 4) & 0x3) + 1,
            u32::from(bytes[1] & 0x7f),
        )
    }

    /// Words the block that `block` starts with takes: its header, scores and starts, to the
    /// end of their last granule.
    fn size(block: &[u32]) -> usize {
        let (len, width, _) = Block::header(block);
        (Block::head(len) + len * width).next_multiple_of(GRANULE)
    }

    /// Where the starts begin in a block of `len` ranges after the first: past the two header
    /// bytes and `len + 1` scores.
    #[inline(always)]
    fn head(len: usize) -> usize {
        (len + 6) / 4
    }

    /// The score at `offset` in the bucket of the block that `block` starts with.
    #[inline(always)]
    fn find(block: &[u32], offset: u128) -> u8 {
        let (len, width, zeros) = Block::header(block);
        let at = offset >> zeros;
        let head = Block::head(len);
        // The starts are sorted, so counting those at or below `at` finds the range. A start
        // fits in `width` words, so an `at` past them counts the same clamped. Only the
        // block's own words are read: past them the line may end.
        // The `match` on the width mispredicts about every other IPv6 lookup (widths 1 and 3
        // are as common); counting for every width and picking after removes that but doubles
        // the lookup's instructions, and measured no faster (docs/scores.md).
        let after = match width {
            1 => {
                let at = u32::try_from(at).unwrap_or(u32::MAX);
                block[head..head + len].iter().filter(|&&s| s <= at).count()
            }
            2 => Block::count::<2>(&block[head..head + 2 * len], at),
            3 => Block::count::<3>(&block[head..head + 3 * len], at),
            _ => Block::count::<4>(&block[head..head + 4 * len], at),
        };
        let scores: &[u8] = bytemuck::cast_slice(&block[..head]);
        scores[2 + after]
    }

    /// [`Block::find`]'s count for `starts` of `W` words each. A plain loop, not an
    /// iterator's `filter().count()`, which the compiler left as a call with its state on the
    /// stack (about 30 instructions more per lookup that reads a block of 3-word starts).
    #[inline(always)]
    fn count<const W: usize>(starts: &[u32], at: u128) -> usize {
        let mut after = 0;
        for s in starts.chunks_exact(W) {
            let start = s.iter().fold(0u128, |s, &w| s << 32 | u128::from(w));
            after += usize::from(start <= at);
        }
        after
    }
}

/// Disjoint ranges with scores, indexed. Immutable once built.
#[derive(Debug)]
pub struct Ranges<K: Key> {
    /// With run leaves ([`Key::LEAF`]): `starts[i]..starts[i + 1]` has `scores[i]`; empty with
    /// blocks.
    starts: Pages<K>,
    scores: Pages<u8>,
    /// The index nodes, root first (none when there is one range).
    index: Pages<u32>,
    /// The leaves the nodes point to ([`Block`]s, packed in lines), in `u32` words.
    blocks: Pages<u32>,
    /// [`Block`]s in `blocks`.
    leaves: usize,
    /// The root node's header, copied out of the index.
    root: Root<K>,
    /// Ranges (including those with no score).
    ranges: usize,
    /// Nodes in the index.
    nodes: usize,
    /// Distinct networks the ranges were built from.
    networks: usize,
}

/// The root node's header, kept beside the arrays: a lookup compares the key with it and
/// finds the root's cell from the key without reading the index first (one read and its
/// bounds checks less per lookup). With one range (no index) `lo` and `hi` are 0: every key is
/// at or above `hi` and takes `above`, that range's score.
#[derive(Clone, Copy, Debug)]
struct Root<K> {
    lo: K,
    hi: K,
    shift: u32,
    below: u8,
    above: u8,
}

impl<K: Key> Root<K> {
    /// The header of the node at the start of `index`, or of no node.
    fn of(index: &[u32], whole: u8) -> Self {
        match index.get(..slots_at::<K>()) {
            Some(node) => Root {
                lo: K::read(&node[LO..]),
                hi: K::read(&node[LO + K::WORDS..]),
                shift: node[SHIFT],
                below: node[BELOW] as u8,
                above: node[ABOVE] as u8,
            },
            None => Root {
                lo: K::default(),
                hi: K::default(),
                shift: 0,
                below: whole,
                above: whole,
            },
        }
    }
}

/// A network as its first key and length, with its score.
#[derive(Clone, Copy, Debug)]
pub struct Span<K> {
    /// First address (host bits zero).
    pub first: K,
    /// Prefix length.
    pub len: u8,
    /// Score.
    pub score: u8,
    /// Its place among the spans given to [`Ranges::build`] (set there): which of two equal
    /// networks came later, after a sort that does not keep their order.
    order: u32,
}

impl<K> Span<K> {
    /// The network of `len` bits from `first`, scored `score`.
    pub fn new(first: K, len: u8, score: u8) -> Self {
        Span {
            first,
            len,
            score,
            order: 0,
        }
    }
}

impl<K: Key> Default for Ranges<K> {
    /// No network: one range, all addresses, no score.
    fn default() -> Self {
        Ranges::build(Vec::new()).0
    }
}

/// The ranges while the index is built: `starts[i]..starts[i + 1]` has `scores[i]`;
/// `starts[0]` is 0. Filled in place (with run leaves, [`Key::LEAF`], they are kept); the last
/// range is held aside until the next one starts, since a range that starts next to it may
/// still change its score or merge into it.
struct Flat<K: Key> {
    starts: Filling<K>,
    scores: Filling<u8>,
    last: (K, u8),
}

impl<K: Key> Flat<K> {
    /// Starts a range of `score` at `at`, merging it with its neighbours where it can.
    #[inline]
    fn mark(&mut self, at: K, score: u8) {
        if self.last.0 == at {
            self.last.1 = score;
            if self.scores.last() == Some(score) {
                if let (Some(start), Some(score)) = (self.starts.pop(), self.scores.pop()) {
                    self.last = (start, score);
                }
            }
        } else if self.last.1 != score {
            self.starts.push(self.last.0);
            self.scores.push(self.last.1);
            self.last = (at, score);
        }
    }

    /// All the ranges, the last one too.
    fn finish(mut self) -> (Filling<K>, Filling<u8>) {
        self.starts.push(self.last.0);
        self.scores.push(self.last.1);
        (self.starts, self.scores)
    }
}

/// The ranges, read while the index is built.
struct Sorted<'a, K> {
    starts: &'a [K],
    scores: &'a [u8],
}

impl<K: Key> Sorted<'_, K> {
    /// The range holding `key`, by binary search.
    fn range_of(&self, key: K) -> usize {
        self.starts.partition_point(|&s| s <= key) - 1
    }

    /// The range holding `key`, at or after range `from` (which starts at or below `key`):
    /// galloping forward, for keys that come in order and mostly lie a range or two apart.
    #[inline]
    fn range_after(&self, from: usize, key: K) -> usize {
        let (mut below, mut step) = (from, 1);
        // `starts[below] <= key`; find a start above `key`, doubling the steps.
        let mut above = from + 1;
        while above < self.starts.len() && self.starts[above] <= key {
            below = above;
            above += step;
            step *= 2;
        }
        let above = above.min(self.starts.len());
        below + self.starts[below + 1..above].partition_point(|&s| s <= key)
    }

    /// The [`NET`] slot of ranges `i..=j` (`j > i`), which lie in one bucket of 2^`shift` keys,
    /// if they are one range starting in the bucket or one network inside the range around
    /// it.
    fn net(&self, i: usize, j: usize, shift: u32) -> Option<[u32; 4]> {
        let score = |s: u8| match s {
            NONE => Some(NET_NONE),
            s if u32::from(s) < NET_NONE => Some(u32::from(s)),
            _ => None,
        };
        let first = self.starts[i + 1].low(shift);
        let (size, after) = match j - i {
            // Any size the offset is a multiple of: the range goes on past the bucket.
            1 => (first.trailing_zeros(), i + 1),
            2 => {
                let size = self.starts[j].low(shift) - first;
                let aligned = size.is_power_of_two() && first.is_multiple_of(size);
                (size.trailing_zeros(), aligned.then_some(j)?)
            }
            _ => return None,
        };
        let start = first >> size;
        if start >> 96 != 0 {
            return None;
        }
        let scores = score(self.scores[i])? << 14 | score(self.scores[i + 1])? << 7;
        Some([
            NET | size << NET_SIZE | scores | score(self.scores[after])?,
            start as u32,
            (start >> 32) as u32,
            (start >> 64) as u32,
        ])
    }

    /// The block of ranges `i..=j` (`j > i`), which lie in one bucket of 2^`shift` keys, if
    /// they fit in one.
    fn block(&self, i: usize, j: usize, shift: u32) -> Option<Block> {
        let mut offsets = [0u128; BLOCK_WORDS];
        let starts = self
            .starts
            .get(i + 1..=j)
            .filter(|s| s.len() <= BLOCK_WORDS)?;
        for (o, s) in offsets.iter_mut().zip(starts) {
            *o = s.low(shift);
        }
        Block::new(&offsets[..starts.len()], &self.scores[i..=j])
    }
}

impl<K: Key> Ranges<K> {
    /// Builds from networks (nested or disjoint, as networks are) in file order: of the same
    /// network given twice, the later one counts. Returns the ranges and how many networks were
    /// repeats.
    pub fn build(spans: Vec<Span<K>>) -> (Self, usize) {
        Self::build_placed(spans, HUGE_MIN)
    }

    /// The networks as disjoint ranges ([`Flat`]), their arrays in a map from `placed` bytes:
    /// the ranges' starts and scores, how many distinct networks and how many repeats.
    fn flatten(mut spans: Vec<Span<K>>, placed: usize) -> (Filling<K>, Filling<u8>, usize, usize) {
        // The same network twice: the later one counts. Numbered here, so that the last of a
        // run of equal networks after [`Key::sort`] is the later one. (Past 2^32 spans the
        // numbers wrap: only which of two repeats wins could change then.)
        for (order, s) in spans.iter_mut().enumerate() {
            s.order = order as u32;
        }
        K::sort(&mut spans);
        let total = spans.len();
        spans.dedup_by(|later, earlier| {
            let same = (later.first, later.len) == (earlier.first, earlier.len);
            if same {
                earlier.score = later.score;
            }
            same
        });
        let networks = spans.len();

        // Each network starts at most two ranges (at its first key and after its last), so
        // the arrays are sized once.
        let bound = 2 * networks + 1;
        let mut flat = Flat {
            starts: Filling::new(bound, placed),
            scores: Filling::new(bound, placed),
            last: (K::default(), NONE),
        };
        // Networks holding the current position, innermost last: (last address, score).
        let mut open: Vec<(K, u8)> = Vec::new();
        for s in &spans {
            while let Some(&(last, _)) = open.last() {
                if last >= s.first {
                    break;
                }
                open.pop();
                if let Some(next) = last.succ() {
                    flat.mark(next, open.last().map_or(NONE, |o| o.1));
                }
            }
            flat.mark(s.first, s.score);
            open.push((s.first.last(s.len), s.score));
        }
        while let Some((last, _)) = open.pop() {
            if let Some(next) = last.succ() {
                flat.mark(next, open.last().map_or(NONE, |o| o.1));
            }
        }
        drop(spans);
        let (starts, scores) = flat.finish();
        (starts, scores, networks, total - networks)
    }

    /// [`Ranges::build`], with arrays of `huge_min` bytes or more in huge pages.
    fn build_placed(spans: Vec<Span<K>>, huge_min: usize) -> (Self, usize) {
        // Kept with run leaves: built in their pages then.
        let placed = if K::LEAF > 0 { huge_min } else { usize::MAX };
        let (starts, scores, networks, repeats) = Self::flatten(spans, placed);
        let n = starts.len();
        let mut tree = Tree {
            index: Vec::new(),
            // A block holds at least one start inside its bucket, and no two blocks' buckets
            // overlap: at most one block per range but the first, and a line per block at
            // most.
            blocks: Filling::new(if K::LEAF == 0 { (n - 1) * LINE } else { 0 }, huge_min),
            open: Vec::with_capacity(OPEN_LINES),
            leaves: 0,
            nodes: 0,
            key: std::marker::PhantomData,
        };
        let sorted = Sorted {
            starts: starts.as_slice(),
            scores: scores.as_slice(),
        };
        let whole = sorted.scores[0];
        if n > 1 {
            tree.node(&sorted, 0, n - 1, K::ROOT_BITS);
        }
        tree.close_lines(0);
        let (starts, scores) = if K::LEAF > 0 {
            (starts.seal(), scores.seal())
        } else {
            // Freed before the index is copied into its pages, to keep the peak down.
            drop((starts, scores));
            (Pages::default(), Pages::default())
        };
        let root = Root::of(&tree.index, whole);
        let r = Ranges {
            blocks: tree.blocks.seal(),
            leaves: tree.leaves,
            index: Pages::with_threshold(tree.index, huge_min),
            starts,
            scores,
            root,
            ranges: n,
            nodes: tree.nodes,
            networks,
        };
        (r, repeats)
    }
}

/// The index while it is built.
struct Tree<K> {
    index: Vec<u32>,
    /// The lines of blocks written so far.
    blocks: Filling<u32>,
    /// The lines after those, still filling: their words and how many are used.
    open: Vec<([u32; LINE], usize)>,
    /// Blocks placed.
    leaves: usize,
    nodes: usize,
    key: std::marker::PhantomData<K>,
}

impl<K: Key> Tree<K> {
    /// Places `block` in the first open line it fits in (a new one if none), never across
    /// two lines; returns where it starts, in granules. Keeping a few lines open fills the
    /// gaps a block too large for the end of a line leaves with the small blocks after it.
    fn place(&mut self, block: &Block) -> u32 {
        self.leaves += 1;
        let line = match self.open.iter().position(|l| l.1 + block.size <= LINE) {
            Some(line) => line,
            None => {
                self.close_lines(OPEN_LINES - 1);
                self.open.push(([0; LINE], 0));
                self.open.len() - 1
            }
        };
        let written = self.blocks.len() + line * LINE;
        let (words, used) = &mut self.open[line];
        words[*used..*used + block.size].copy_from_slice(&block.words[..block.size]);
        let at = written + *used;
        *used += block.size;
        // Below [`NET`] and the flags above it: 8 GiB of blocks, some 134 million IPv6
        // networks; `table::MAX_NETWORKS` keeps a table far below that.
        assert!(
            at / GRANULE < NET as usize,
            "a score table past 8 GiB of leaf blocks"
        );
        (at / GRANULE) as u32
    }

    /// Writes the first open lines until `keep` are left open.
    fn close_lines(&mut self, keep: usize) {
        while self.open.len() > keep {
            let (words, _) = self.open.remove(0);
            for w in words {
                self.blocks.push(w);
            }
        }
    }

    /// Adds the node over ranges `i..=j` (`j > i`); returns the first two words of the cell
    /// that points to it (the second one only used in 4-word cells, see [`child_at`]).
    fn node(&mut self, flat: &Sorted<'_, K>, i: usize, j: usize, max_bits: u32) -> [u32; 2] {
        let hi = flat.starts[j];
        let count = (j - i + 1) as u32;
        let bits = (count.next_power_of_two().trailing_zeros() + K::BUCKETS)
            .saturating_sub(2)
            .clamp(1, max_bits);
        let (lo, shift, buckets, direct) = if flat.starts[i + 1] == hi {
            // Two ranges: below and above decide, no bucket needed.
            (hi, 0, 0, None)
        } else {
            let span = hi.minus(flat.starts[i + 1]);
            let shift = span.pred().width().saturating_sub(bits);
            // A child is direct if its ranges fit in 2^(bits or bits + 1) buckets from a `lo`
            // aligned on all of them, and nothing below that `lo` is outside range `i`.
            let direct = (max_bits < K::ROOT_BITS)
                .then(|| {
                    (bits..=bits + 1).find_map(|b| {
                        let lo = flat.starts[i + 1].align(shift + b);
                        let fits = lo >= flat.starts[i] && hi.pred().minus(lo).width() <= shift + b;
                        fits.then_some((lo, b))
                    })
                })
                .flatten();
            let lo = direct.map_or(flat.starts[i + 1].align(shift), |d| d.0);
            (
                lo,
                shift,
                hi.pred().minus(lo).bucket(shift) + 1,
                direct.map(|d| d.1),
            )
        };
        // The index grows by a quarter at a time, not twice: the allocated peak (the
        // benchmark's counting allocator, which the 64 MiB goal is measured by) counts the
        // index's capacity, some 19 MB for a million prefixes, and doubling left up to half of
        // it unused. Resident memory is the same either way (pages never written are not
        // backed, and a large vector grows by `mremap`, not by a copy).
        let words = LINE + slots_at::<K>() + buckets * K::CELL;
        if self.index.len() + words > self.index.capacity() {
            let grown = self.index.capacity() + self.index.capacity() / 4;
            self.index
                .reserve_exact(words.max(grown - self.index.len()));
        }
        let align = if direct.is_some() { LINE } else { K::CELL };
        self.index
            .resize(self.index.len().next_multiple_of(align), 0);
        let at = self.index.len();
        let pointer = match direct {
            Some(b) if K::CELL == 4 => [
                CHILD | DIRECT | shift << DIRECT_SHIFT | b << DIRECT_BITS,
                (at / LINE) as u32,
            ],
            Some(b) if at / LINE < DIRECT_LINES => [
                CHILD | DIRECT | shift << DIRECT_SHIFT | b << DIRECT_BITS | (at / LINE) as u32,
                0,
            ],
            _ => {
                // Below [`DIRECT`]: 4 GiB of index; `table::MAX_NETWORKS` keeps a table far
                // below that.
                assert!(at < DIRECT as usize, "a score table past 4 GiB of index");
                [CHILD | at as u32, 0]
            }
        };
        self.nodes += 1;
        self.index
            .extend([shift, u32::from(flat.scores[i]), u32::from(flat.scores[j])]);
        lo.write(&mut self.index);
        hi.write(&mut self.index);
        let first_slot = at + slots_at::<K>();
        self.index.resize(first_slot + buckets * K::CELL, 0);
        let step = K::from_bucket(1, shift);
        // The buckets' first and last keys come in order: each bucket's ranges are found
        // forward from the previous bucket's (one binary search per node, not two per bucket),
        // and the buckets that lie inside one range up to the next range's start are filled
        // at once.
        let mut bj = if buckets > 0 { flat.range_of(lo) } else { i };
        let mut b = 0;
        while b < buckets {
            let first = lo.plus(K::from_bucket(b, shift));
            let bi = flat.range_after(bj, first);
            // The first bucket past range `bi`: the one range `bi + 1` starts in, unless that
            // is the node's end (`first < hi`, so `bi < j`).
            let next = match bi + 1 {
                end if end == j => buckets,
                after => flat.starts[after].minus(lo).bucket(shift),
            };
            if next > b {
                for cell in self.index[first_slot + b * K::CELL..first_slot + next * K::CELL]
                    .chunks_exact_mut(K::CELL)
                {
                    cell[0] = SCORE | u32::from(flat.scores[bi]);
                }
                (b, bj) = (next, bi);
                continue;
            }
            let last = first.plus(step.pred()).min(hi.pred());
            bj = flat.range_after(bi + 1, last);
            let cell = first_slot + b * K::CELL;
            if let Some(net) = (K::CELL == 4).then(|| flat.net(bi, bj, shift)).flatten() {
                self.index[cell..cell + 4].copy_from_slice(&net);
                b += 1;
                continue;
            }
            let slot = if K::LEAF > 0 && bj - bi < K::LEAF {
                bi as u32
            } else if let Some(block) = flat.block(bi, bj, shift).filter(|_| K::LEAF == 0) {
                self.place(&block)
            } else {
                let [slot, second] = self.node(flat, bi, bj, CHILD_BITS);
                if K::CELL == 4 {
                    self.index[cell + 1] = second;
                }
                slot
            };
            self.index[cell] = slot;
            b += 1;
        }
        pointer
    }
}

impl<K: Key> Ranges<K> {
    /// The score of the range holding `key` ([`NONE`]: no network).
    #[inline]
    pub fn lookup(&self, key: K) -> u8 {
        let root = &self.root;
        if key < root.lo {
            return root.below;
        }
        if key >= root.hi {
            return root.above;
        }
        let cell = slots_at::<K>() + key.minus(root.lo).bucket(root.shift) * K::CELL;
        self.descend(key, cell, root.shift)
    }

    /// The score of `key` from the bucket cell at `cell` in [`Ranges::index`] down, the cell's
    /// node having buckets of 2^`shift` keys from a multiple of that (so the key's low
    /// `shift` bits are its offset in the bucket).
    #[inline(always)]
    fn descend(&self, key: K, mut cell: usize, mut shift: u32) -> u8 {
        let index = self.index.as_slice();
        loop {
            let slot = index[cell];
            if slot & CHILD != 0 {
                let direct = slot & DIRECT != 0;
                let second = if K::CELL == 4 && direct {
                    index[cell + 1]
                } else {
                    0
                };
                let at = child_at::<K>(slot, second);
                // A direct child's bucket comes from the key's bits and its size from the
                // slot (see [`DIRECT`]): its cell's address does not wait for the header.
                if direct {
                    let bits = (slot >> DIRECT_BITS) & 0xf;
                    shift = (slot >> DIRECT_SHIFT) & 0x7f;
                    cell = at + slots_at::<K>() + (key.bucket(shift) & ((1 << bits) - 1)) * K::CELL;
                }
                let node = header::<K>(index, at);
                let lo = K::read(&node[LO..]);
                if key < lo {
                    return node[BELOW] as u8;
                }
                if key >= K::read(&node[LO + K::WORDS..]) {
                    return node[ABOVE] as u8;
                }
                if !direct {
                    shift = node[SHIFT];
                    cell = at + slots_at::<K>() + key.minus(lo).bucket(shift) * K::CELL;
                }
                continue;
            }
            if slot & SCORE != 0 {
                return slot as u8;
            }
            if K::CELL == 4 && slot & NET != 0 {
                let net = &index[cell..cell + 4];
                let start =
                    u128::from(net[1]) | u128::from(net[2]) << 32 | u128::from(net[3]) << 64;
                let at = key.low(shift) >> ((slot >> NET_SIZE) & 0x7f);
                let score = (slot >> (7 * (1 - (at > start) as u32 + (at < start) as u32))) & 0x7f;
                return if score == NET_NONE { NONE } else { score as u8 };
            }
            if K::LEAF == 0 {
                let blocks = self.blocks.as_slice();
                return Block::find(&blocks[slot as usize * GRANULE..], key.low(shift));
            }
            let (starts, leaf_scores) = (self.starts.as_slice(), self.scores.as_slice());
            let first = slot as usize;
            let end = (first + K::LEAF).min(starts.len());
            // The leaf's scores are copied before the scan: their read does not wait for the
            // starts' (two memory reads at once, not one after the other).
            let mut scores = [NONE; MAX_LEAF];
            scores[..end - first].copy_from_slice(&leaf_scores[first..end]);
            // Branch-free: the starts are sorted, so counting those at or below `key` finds
            // the range.
            let after = starts[first + 1..end].iter().filter(|&&s| s <= key).count();
            return scores[after];
        }
    }

    /// Ranges (including those with no score).
    pub fn len(&self) -> usize {
        self.ranges
    }

    /// Memory held, by where it is.
    pub fn memory(&self) -> Memory {
        let mut m = Memory::default();
        m.add(&self.starts);
        m.add(&self.scores);
        m.add(&self.index);
        m.add(&self.blocks);
        m
    }

    /// Nodes in the index, the deepest chain of them and leaf blocks (for the benchmark's
    /// report).
    pub fn shape(&self) -> (usize, usize, usize) {
        fn depth<K: Key>(r: &Ranges<K>, at: usize) -> usize {
            let node = &r.index.as_slice()[at..];
            let (lo, hi) = (K::read(&node[LO..]), K::read(&node[LO + K::WORDS..]));
            let buckets = if lo == hi {
                0
            } else {
                hi.pred().minus(lo).bucket(node[SHIFT]) + 1
            };
            let slots = &node[slots_at::<K>()..][..buckets * K::CELL];
            1 + slots
                .chunks_exact(K::CELL)
                .filter(|c| c[0] & CHILD != 0)
                .map(|c| depth(r, child_at::<K>(c[0], c.get(1).copied().unwrap_or(0))))
                .max()
                .unwrap_or(0)
        }
        let deepest = if self.index.as_slice().is_empty() {
            0
        } else {
            depth(self, 0)
        };
        (self.nodes, deepest, self.leaves)
    }

    /// Distinct networks the ranges were built from.
    pub fn networks(&self) -> usize {
        self.networks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: u32, len: u8, score: u8) -> Span<u32> {
        Span::new(first, len, score)
    }

    /// The bucket slots of the node at `at` in [`Ranges::index`].
    fn slots<K: Key>(r: &Ranges<K>, at: usize) -> Vec<u32> {
        cells(r, at).into_iter().map(|c| c[0]).collect()
    }

    /// The first two words of each bucket cell of the node at `at` (see [`child_at`]).
    fn cells<K: Key>(r: &Ranges<K>, at: usize) -> Vec<[u32; 2]> {
        let node = &r.index.as_slice()[at..];
        let (lo, hi) = (K::read(&node[LO..]), K::read(&node[LO + K::WORDS..]));
        let buckets = match lo == hi {
            true => 0,
            false => hi.pred().minus(lo).bucket(node[SHIFT]) + 1,
        };
        let cells = &node[slots_at::<K>()..][..buckets * K::CELL];
        cells
            .chunks_exact(K::CELL)
            .map(|c| [c[0], c.get(1).copied().unwrap_or(0)])
            .collect()
    }

    /// Every index node, by its place in [`Ranges::index`].
    fn nodes<K: Key>(r: &Ranges<K>) -> Vec<usize> {
        fn walk<K: Key>(r: &Ranges<K>, at: usize, out: &mut Vec<usize>) {
            out.push(at);
            for [slot, second] in cells(r, at).into_iter().filter(|c| c[0] & CHILD != 0) {
                walk(r, child_at::<K>(slot, second), out);
            }
        }
        let mut out = Vec::new();
        if !r.index.as_slice().is_empty() {
            walk(r, 0, &mut out);
        }
        out
    }

    /// Child pointers in the index: how many are [`DIRECT`], and all.
    fn children<K: Key>(r: &Ranges<K>) -> (usize, usize) {
        let pointers: Vec<u32> = nodes(r)
            .into_iter()
            .flat_map(|at| slots(r, at))
            .filter(|&s| s & CHILD != 0)
            .collect();
        let direct = pointers.iter().filter(|&&s| s & DIRECT != 0).count();
        (direct, pointers.len())
    }

    /// Every bucket of every node holds a score exactly when it lies inside one range (its
    /// first and last key found in the ranges by binary search), and then that range's score.
    fn assert_scores_where_one_range<K: Key>(spans: &[Span<K>]) {
        let (starts, scores, ..) = Ranges::flatten(spans.to_vec(), usize::MAX);
        let (starts, scores) = (starts.as_slice(), scores.as_slice());
        let range_of = |key: K| starts.partition_point(|&s| s <= key) - 1;
        let (r, _) = Ranges::build_placed(spans.to_vec(), usize::MAX);
        for at in nodes(&r) {
            let node = &r.index.as_slice()[at..];
            let shift = node[SHIFT];
            let (lo, hi) = (K::read(&node[LO..]), K::read(&node[LO + K::WORDS..]));
            for (b, &slot) in slots(&r, at).iter().enumerate() {
                let first = lo.plus(K::from_bucket(b, shift));
                let last = first.plus(K::from_bucket(1, shift).pred()).min(hi.pred());
                let (i, j) = (range_of(first), range_of(last));
                let score = (slot & CHILD == 0 && slot & SCORE != 0).then_some(slot as u8);
                let want = (i == j).then_some(scores[i]);
                assert_eq!(score, want, "node at {at}, bucket {b}: ranges {i}..={j}");
                if K::LEAF == 0 && slot & (CHILD | SCORE | NET) == 0 {
                    let start = slot as usize * GRANULE;
                    let size = Block::size(&r.blocks.as_slice()[start..]);
                    assert!(
                        start % LINE + size <= LINE,
                        "block at {start} crosses a line"
                    );
                }
            }
        }
    }

    /// The longest network holding `key`, by brute force.
    fn brute(spans: &[Span<u32>], key: u32) -> u8 {
        let mut best: Option<(u8, u8)> = None;
        for s in spans {
            let inside = s.first <= key && key <= s.first.last(s.len);
            if inside && best.is_none_or(|(len, _)| s.len >= len) {
                best = Some((s.len, s.score));
            }
        }
        best.map_or(NONE, |b| b.1)
    }

    #[test]
    fn matches_brute_force_on_dense_random_networks() {
        let mut rng = oorandom::Rand32::new(5);
        for round in 0..6 {
            // Half in a small space, half in a cluster of 4,096 addresses, so that buckets
            // overflow into child nodes.
            let spans: Vec<Span<u32>> = (0..2000)
                .map(|i| {
                    let (len, key) = if i % 2 == 0 {
                        (12 + rng.rand_range(0..21) as u8, rng.rand_u32() >> 12)
                    } else {
                        (
                            20 + rng.rand_range(0..13) as u8,
                            0x5000 + (rng.rand_u32() >> 20),
                        )
                    };
                    let first = key & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                    span(first, len, rng.rand_range(0..101) as u8)
                })
                .collect();
            let (r, _) = Ranges::build(spans.clone());
            assert!(r.shape().1 >= 2, "round {round}: child nodes exercised");
            assert_scores_where_one_range(&spans);
            let (direct, all) = children(&r);
            assert!(
                direct > 0,
                "round {round}: {direct} of {all} children direct"
            );
            for _ in 0..5_000 {
                let key = rng.rand_u32() >> 12;
                assert_eq!(
                    r.lookup(key),
                    brute(&spans, key),
                    "round {round}, key {key:#x}"
                );
            }
            for s in &spans {
                let last = s.first.last(s.len);
                for key in [s.first, last, s.first.wrapping_sub(1), last.wrapping_add(1)] {
                    assert_eq!(r.lookup(key), brute(&spans, key), "edge {key:#x}");
                }
            }
        }
    }

    #[test]
    fn ipv6_children_are_direct_where_their_span_aligns() {
        // Clusters of single addresses and /64s in a few /48s: children under the root, most
        // of them aligned on their span.
        let mut rng = oorandom::Rand64::new(3);
        let spans: Vec<Span<u128>> = (0..20_000)
            .map(|i| {
                let base = (0x2001_0db8u128 << 96) | (u128::from(i as u64 % 7) << 80);
                let noise = (u128::from(rng.rand_u64()) << 64 | u128::from(rng.rand_u64())) >> 48;
                let len = if i % 3 == 0 { 64 } else { 128 };
                let first = (base | noise) & u128::MAX.checked_shl(128 - len).unwrap_or(0);
                Span::new(first, len as u8, (i % 101) as u8)
            })
            .collect();
        let (r, _) = Ranges::build(spans.clone());
        let (direct, all) = children(&r);
        assert!(direct * 2 > all, "{direct} of {all} children direct");
        assert_scores_where_one_range(&spans);
        // A single address is the longest network holding itself (the /64s may repeat).
        for s in spans.iter().filter(|s| s.len == 128) {
            assert_eq!(r.lookup(s.first), s.score, "{:x}", s.first);
        }
    }

    #[test]
    fn edges_of_the_key_space() {
        let spans = vec![span(0, 32, 1), span(u32::MAX, 32, 2), span(0, 0, 50)];
        let (r, _) = Ranges::build(spans.clone());
        for key in [0, 1, 2, u32::MAX - 1, u32::MAX, 1 << 31] {
            assert_eq!(r.lookup(key), brute(&spans, key), "{key:#x}");
        }
        let (empty, _) = Ranges::<u128>::build(Vec::new());
        assert_eq!(empty.lookup(u128::MAX), NONE);
        assert_eq!(empty.len(), 1);
    }

    /// Networks of `len` bits at `offsets` in each of eight buckets of the root, inside
    /// `region`/32 (scored 10): the region first.
    fn in_eight_buckets(len: u8, offsets: &[u128]) -> Vec<Span<u128>> {
        let region = 0x2001_0db8u128 << 96;
        let mut spans = vec![Span::new(region, 32, 10)];
        // Up to 35 ranges: 32 or 64 buckets of 2^91 or 2^90 over the region; the third
        // group's top bits pick one.
        for i in 0..8u8 {
            for &offset in offsets {
                let first = region | (u128::from(i) * 0x2000) << 80 | offset;
                spans.push(Span::new(first, len, 20 + i));
            }
        }
        spans
    }

    /// Lookups at and either side of every network's edges match the networks.
    fn assert_edges(r: &Ranges<u128>, spans: &[Span<u128>]) {
        assert_scores_where_one_range(spans);
        for s in spans {
            let last = s.first.last(s.len);
            assert_eq!(r.lookup(s.first), s.score, "{:x}", s.first);
            assert_eq!(r.lookup(last), s.score, "{last:x}");
            let around = if s.len == 32 { NONE } else { 10 };
            assert_eq!(r.lookup(s.first - 1), around, "{:x} - 1", s.first);
            assert_eq!(r.lookup(last + 1), around, "{last:x} + 1");
        }
    }

    #[test]
    fn an_ipv6_network_alone_in_its_bucket_ends_the_lookup_in_the_slot() {
        // A /64 and a single address, each alone in its bucket: the root's slot holds it
        // (the root alone, no block), so a lookup reads the root's header and one slot.
        for (len, offset) in [(64, 1 << 80), (128, 1 << 80 | 5)] {
            let spans = in_eight_buckets(len, &[offset]);
            let (r, _) = Ranges::build(spans.clone());
            assert_eq!(r.shape(), (1, 1, 0), "/{len}: the root alone, no block");
            assert_eq!(children(&r), (0, 0));
            let nets = slots(&r, 0)
                .iter()
                .filter(|&&s| s & (CHILD | SCORE | NET) == NET)
                .count();
            assert_eq!(nets, 8, "/{len}");
            assert_edges(&r, &spans);
        }
    }

    #[test]
    fn ipv6_blocks_share_lines() {
        // Two /64s in a bucket: four starts of one word after the shared zero bits are shifted
        // out, five scores and the header: two granules, two blocks a line.
        let spans = in_eight_buckets(64, &[1 << 80, 3 << 80]);
        let (r, _) = Ranges::build(spans.clone());
        assert_eq!(r.shape(), (1, 1, 8), "the root alone, eight blocks");
        assert_eq!(
            r.blocks.as_slice().len(),
            4 * LINE,
            "eight blocks in four lines"
        );
        assert_edges(&r, &spans);
        // Two single addresses: four starts of three words, a line each.
        let spans = in_eight_buckets(128, &[1 << 80 | 5, 3 << 80 | 5]);
        let (r, _) = Ranges::build(spans.clone());
        assert_eq!(r.shape(), (1, 1, 8));
        assert_eq!(
            r.blocks.as_slice().len(),
            8 * LINE,
            "eight blocks in eight lines"
        );
        assert_edges(&r, &spans);
    }

    #[test]
    fn two_ranges_need_no_bucket() {
        let spans = vec![span(0, 8, 5)];
        let (r, _) = Ranges::build(spans.clone());
        for key in [0, 0x00ff_ffff, 0x0100_0000, u32::MAX] {
            assert_eq!(r.lookup(key), brute(&spans, key), "{key:#x}");
        }
        let (r, _) = Ranges::build(vec![Span::new(u128::MAX, 128, 3)]);
        assert_eq!((r.lookup(u128::MAX - 1), r.lookup(u128::MAX)), (NONE, 3));
    }

    #[test]
    fn a_block_holds_starts_of_every_width() {
        for offsets in [
            &[1u128, 2, 0xffff_fffe][..],
            &[1 << 40, 3 << 40, 1 << 70],
            &[1, 1 << 33, 1 << 63, u128::from(u64::MAX)],
            &[1, 1 << 65, 1 << 95],
            &[1, 1 << 100, u128::MAX - 1],
            &[1 << 64, 2 << 64, 3 << 64, 5 << 64, 8 << 64, 13 << 64],
        ] {
            let scores: Vec<u8> = (0..=offsets.len() as u8).collect();
            let block = Block::new(offsets, &scores).expect("fits");
            let find = |offset| Block::find(&block.words[..block.size], offset);
            assert_eq!(find(0), 0, "{offsets:x?}");
            for (k, &o) in offsets.iter().enumerate() {
                assert_eq!(find(o - 1), k as u8, "{o:#x} - 1");
                assert_eq!(find(o), k as u8 + 1, "{o:#x}");
            }
            assert_eq!(find(u128::MAX), offsets.len() as u8);
        }
        let wide = [1u128, 2, 3, 1 << 100];
        assert!(Block::new(&wide, &[0; 5]).is_none(), "4 starts of 4 words");
        let many: Vec<u128> = (1..=13).collect();
        assert!(Block::new(&many, &[0; 14]).is_none(), "13 starts");
    }

    #[test]
    fn repeats_keep_the_later_score() {
        let spans = vec![span(0x0A00_0000, 8, 5), span(0x0A00_0000, 8, 7)];
        let (r, repeats) = Ranges::build(spans);
        assert_eq!((r.lookup(0x0A01_0203), repeats), (7, 1));
    }

    /// Networks as (first key, length, score), from a generator that stays near a few bases so
    /// that networks nest, overlap at their edges and fill buckets past a leaf's size.
    mod property {
        use super::super::*;
        use proptest::prelude::*;

        /// The score of the longest network holding `key` (the later one of equals), by brute
        /// force.
        fn longest<K: Key>(spans: &[Span<K>], key: K) -> u8 {
            let mut best: Option<(u8, u8)> = None;
            for s in spans {
                let inside = s.first <= key && key <= s.first.last(s.len);
                if inside && best.is_none_or(|(len, _)| s.len >= len) {
                    best = Some((s.len, s.score));
                }
            }
            best.map_or(NONE, |b| b.1)
        }

        /// Every key at an edge of a network (its first and last, and either side), and `extra`.
        fn edges<K: Key>(spans: &[Span<K>], extra: &[K]) -> Vec<K> {
            let mut keys = extra.to_vec();
            for s in spans {
                let last = s.first.last(s.len);
                keys.extend([s.first, last]);
                keys.extend(s.first.pred_checked());
                keys.extend(last.succ());
            }
            keys
        }

        trait PredChecked: Sized {
            fn pred_checked(self) -> Option<Self>;
        }
        impl<K: Key> PredChecked for K {
            fn pred_checked(self) -> Option<Self> {
                (self != K::default()).then(|| self.pred())
            }
        }

        /// Lookups match the brute force, with the arrays on the heap and in maps (huge pages
        /// where the kernel gives them).
        fn check<K: Key>(spans: Vec<Span<K>>, extra: &[K]) -> Result<(), TestCaseError> {
            super::assert_scores_where_one_range(&spans);
            let (heap, _) = Ranges::build_placed(spans.clone(), usize::MAX);
            let (mapped, _) = Ranges::build_placed(spans.clone(), 0);
            prop_assert_eq!(heap.memory().huge + heap.memory().small, 0);
            prop_assert_eq!(mapped.memory().heap, 0);
            for key in edges(&spans, extra) {
                let want = longest(&spans, key);
                prop_assert_eq!(heap.lookup(key), want, "key {:x?}", key);
                prop_assert_eq!(mapped.lookup(key), want, "mapped, key {:x?}", key);
            }
            Ok(())
        }

        /// A length: often the extremes and the common /24../32 or /48../64, else any.
        fn length(max: u8) -> impl Strategy<Value = u8> {
            prop_oneof![
                Just(0),
                Just(max),
                (max - 8)..=max,
                (max / 2 - 16)..=(max / 2),
                0..=max,
            ]
        }

        fn v6_spans() -> impl Strategy<Value = Vec<Span<u128>>> {
            let bases = proptest::collection::vec(any::<u128>(), 1..4);
            bases.prop_flat_map(|bases| {
                let n = bases.len();
                proptest::collection::vec(
                    (0..n, any::<u128>(), 0u32..=128, length(128), 0u8..=100),
                    1..300,
                )
                .prop_map(move |nets| {
                    nets.into_iter()
                        .map(|(b, noise, spread, len, score)| {
                            // Within 2^spread of a base: small spreads pack many networks in
                            // one bucket.
                            let near = bases[b] ^ noise.checked_shr(128 - spread).unwrap_or(0);
                            let first =
                                near & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                            Span::new(first, len, score)
                        })
                        .collect()
                })
            })
        }

        fn v4_spans() -> impl Strategy<Value = Vec<Span<u32>>> {
            proptest::collection::vec(
                (any::<u32>(), any::<u32>(), 0u32..=32, length(32), 0u8..=100),
                1..300,
            )
            .prop_map(|nets| {
                nets.into_iter()
                    .map(|(base, noise, spread, len, score)| {
                        // Two bases only (the top bit), so that spreads overlap.
                        let near =
                            (base & 0x8000_0000) ^ noise.checked_shr(32 - spread).unwrap_or(0);
                        let first = near & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                        Span::new(first, len, score)
                    })
                    .collect()
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn ipv6_lookups_match_the_longest_network(
                spans in v6_spans(),
                extra in proptest::collection::vec(any::<u128>(), 0..64),
            ) {
                check(spans, &[&extra[..], &[0, u128::MAX]].concat())?;
            }

            /// Equal networks too (the spans are taken twice, scored apart), which stay in
            /// file order.
            #[test]
            fn ipv4_networks_sort_by_radix_as_by_comparisons(spans in v4_spans()) {
                let again = spans.iter().map(|s| Span::new(s.first, s.len, s.score / 2));
                let mut spans: Vec<Span<u32>> = spans.iter().copied().chain(again).collect();
                for (order, s) in spans.iter_mut().enumerate() {
                    s.order = order as u32;
                }
                let mut by_radix = spans.clone();
                radix_sort(&mut by_radix);
                comparison_sort(&mut spans);
                let fields = |s: &Span<u32>| (s.first, s.len, s.order, s.score);
                prop_assert_eq!(
                    by_radix.iter().map(fields).collect::<Vec<_>>(),
                    spans.iter().map(fields).collect::<Vec<_>>()
                );
            }

            #[test]
            fn ipv4_lookups_match_the_longest_network(
                spans in v4_spans(),
                extra in proptest::collection::vec(any::<u32>(), 0..64),
            ) {
                check(spans, &[&extra[..], &[0, u32::MAX]].concat())?;
            }
        }
    }
}
