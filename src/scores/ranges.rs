//! Longest-prefix match as disjoint ranges under a small radix index.
//!
//! Networks nest or are disjoint, so a set of networks with scores is the same thing as a
//! sorted list of disjoint address ranges, each with the score of the longest network holding
//! it (or none). A lookup is then "the last range that starts at or below the address". Found by
//! binary search over a million ranges, that is some twenty dependent memory reads, and on the
//! build machine a read that misses the caches costs 200 to 400 ns: too slow for the 100 ns
//! goal. So the ranges sit under an index that jumps near the answer in a few reads:
//!
//! - a node splits the addresses it covers into about one bucket per range (up to 2^18 at the
//!   root);
//! - a bucket that lies inside one range holds that range's score itself (most misses, and
//!   hits inside wide networks, end there: one read);
//! - a bucket over a few ranges (`Key::LEAF`: 16 IPv4 starts, one cache line, or 8 IPv6 ones)
//!   holds the first of them: a branch-free scan of those starts then finds the range;
//! - a bucket over more ranges holds a child node, whose span is narrowed to the starts it
//!   holds (so a cluster of networks deep in IPv6 space costs no empty levels).
//!
//! Measured in `benches/scores.rs` against tree bitmaps (`prefix-trie` 0.10, `ip_network_table`),
//! a binary trie (`prefix-trie` 0.9), an LC-trie (`iptrie`) and plain binary search over these
//! same ranges, on 1,000,000 prefixes: the fastest to look up and the only one to build within
//! the 64 MiB goal (the tries need 83 to 162 MiB). README, "Scores from CIDR lists", has the
//! numbers.

use std::fmt::Debug;

// The shape below was chosen by timing variants side by side, interleaved, on 1,000,000
// synthetic prefixes (root 16..20 bits, children 10..16 bits, 1/4..2 buckets per range, IPv6
// leaves of 4 or 8): this one had the fastest hits for about 25 MiB.

/// Buckets of the root node, at most, as a power of two (1 MiB of slots).
const ROOT_BITS: u32 = 18;
/// Buckets of a child node, at most, as a power of two.
const CHILD_BITS: u32 = 14;
/// Buckets per range in a node, as a power of two above one per four ranges (2: about one
/// bucket per range): more buckets hold a score directly and fewer need a child node.
const BUCKET_BITS: u32 = 2;

/// The largest `Key::LEAF`.
const MAX_LEAF: usize = 16;

/// A slot holding a child node's index.
const CHILD: u32 = 1 << 31;
/// A slot holding a score directly (the bucket lies inside one range).
const SCORE: u32 = 1 << 30;
/// The score of a range that no network covers.
pub const NONE: u8 = u8::MAX;

/// An address as an unsigned integer: `u32` for IPv4, `u128` for IPv6.
pub trait Key: Copy + Ord + Debug + Default {
    /// `self - other`, for `self >= other`.
    fn minus(self, other: Self) -> Self;
    /// `self >> shift` as an index (the caller keeps it below 2^32).
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
    /// `u32` words a key takes in the index.
    const WORDS: usize;
    /// Ranges a leaf bucket may hold: their starts fill one or two cache lines.
    const LEAF: usize;
    /// The key stored at `words[..WORDS]`.
    fn read(words: &[u32]) -> Self;
    /// Appends the key's words.
    fn write(self, out: &mut Vec<u32>);
}

macro_rules! key {
    ($t:ty, $leaf:expr) => {
        impl Key for $t {
            const WORDS: usize = std::mem::size_of::<$t>() / 4;
            const LEAF: usize = $leaf;
            #[inline(always)]
            fn read(words: &[u32]) -> Self {
                words[..Self::WORDS]
                    .iter()
                    .fold(0, |k, &w| k.checked_shl(32).unwrap_or(0) | <$t>::from(w))
            }
            fn write(self, out: &mut Vec<u32>) {
                for i in (0..Self::WORDS).rev() {
                    out.push((self.checked_shr(32 * i as u32).unwrap_or(0)) as u32);
                }
            }
            #[inline(always)]
            fn minus(self, other: Self) -> Self {
                self - other
            }
            #[inline(always)]
            fn bucket(self, shift: u32) -> usize {
                self.checked_shr(shift).unwrap_or(0) as usize
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
        }
    };
}

key!(u32, 16);
key!(u128, 8);

/// Layout of an index node in [`Ranges::index`], in `u32` words: the node covers the keys
/// `lo..hi` with its buckets; keys below `lo` are in range `below`, keys at or above `hi` in
/// range `above`. Header and slots are contiguous, so a level of the index costs one memory
/// read where it can (the header and the slot share a cache line for small nodes).
const SHIFT: usize = 0;
const BELOW: usize = 1;
const ABOVE: usize = 2;
const LO: usize = 3;

/// Disjoint ranges with scores, indexed. Immutable once built.
#[derive(Clone, Debug)]
pub struct Ranges<K> {
    /// `starts[i]..starts[i + 1]` has `scores[i]`; `starts[0]` is 0.
    starts: Vec<K>,
    scores: Vec<u8>,
    /// The index nodes, root first (none when there is one range).
    index: Vec<u32>,
    /// Nodes in the index.
    nodes: usize,
    /// Distinct networks the ranges were built from.
    networks: usize,
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
}

impl<K: Key> Default for Ranges<K> {
    /// No network: one range, all addresses, no score.
    fn default() -> Self {
        Ranges::build(Vec::new()).0
    }
}

impl<K: Key> Ranges<K> {
    /// Builds from networks (nested or disjoint, as networks are) in file order: of the same
    /// network given twice, the later one counts. Returns the ranges and how many networks were
    /// repeats.
    pub fn build(mut spans: Vec<Span<K>>) -> (Self, usize) {
        // Stable: the same network keeps file order, so the last of a run is the later one.
        spans.sort_by_key(|s| (s.first, s.len));
        let total = spans.len();
        spans.dedup_by(|later, earlier| {
            let same = (later.first, later.len) == (earlier.first, earlier.len);
            if same {
                earlier.score = later.score;
            }
            same
        });
        let repeats = total - spans.len();

        let mut r = Ranges {
            starts: vec![K::default()],
            scores: vec![NONE],
            index: Vec::new(),
            nodes: 0,
            networks: spans.len(),
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
                    r.mark(next, open.last().map_or(NONE, |o| o.1));
                }
            }
            r.mark(s.first, s.score);
            open.push((s.first.last(s.len), s.score));
        }
        while let Some((last, _)) = open.pop() {
            if let Some(next) = last.succ() {
                r.mark(next, open.last().map_or(NONE, |o| o.1));
            }
        }
        drop(spans);
        r.starts.shrink_to_fit();
        r.scores.shrink_to_fit();
        r.index();
        (r, repeats)
    }

    /// Starts a range of `score` at `at`, merging it with its neighbours where it can.
    fn mark(&mut self, at: K, score: u8) {
        let n = self.starts.len();
        if self.starts[n - 1] == at {
            self.scores[n - 1] = score;
            if n >= 2 && self.scores[n - 2] == score {
                self.starts.pop();
                self.scores.pop();
            }
        } else if self.scores[n - 1] != score {
            self.starts.push(at);
            self.scores.push(score);
        }
    }

    /// The range holding `key`, by binary search (for building the index).
    fn range_of(&self, key: K) -> usize {
        self.starts.partition_point(|&s| s <= key) - 1
    }

    fn index(&mut self) {
        let n = self.starts.len();
        if n > 1 {
            self.node(0, n - 1, ROOT_BITS);
        }
        self.index.shrink_to_fit();
    }

    /// Adds the node over ranges `i..=j` (more than a leaf's worth); returns its offset.
    fn node(&mut self, i: usize, j: usize, max_bits: u32) -> u32 {
        let lo = self.starts[i + 1];
        let hi = self.starts[j];
        let span = hi.minus(lo);
        let count = (j - i + 1) as u32;
        let bits = (count.next_power_of_two().trailing_zeros() + BUCKET_BITS)
            .saturating_sub(2)
            .clamp(1, max_bits);
        let shift = span.pred().width().saturating_sub(bits);
        let buckets = span.pred().bucket(shift) + 1;
        let at = self.index.len();
        self.nodes += 1;
        self.index.extend([shift, i as u32, j as u32]);
        lo.write(&mut self.index);
        hi.write(&mut self.index);
        let first_slot = self.index.len();
        self.index.resize(first_slot + buckets, 0);
        let step = K::from_bucket(1, shift);
        for b in 0..buckets {
            let first = lo.plus(K::from_bucket(b, shift));
            let last = first.plus(step.pred()).min(hi.pred());
            let bi = self.range_of(first);
            let bj = self.range_of(last);
            let slot = if bi == bj {
                SCORE | u32::from(self.scores[bi])
            } else if bj - bi < K::LEAF {
                bi as u32
            } else {
                CHILD | self.node(bi, bj, CHILD_BITS)
            };
            self.index[first_slot + b] = slot;
        }
        at as u32
    }

    /// The score of the range holding `key` ([`NONE`]: no network).
    #[inline]
    pub fn lookup(&self, key: K) -> u8 {
        if self.index.is_empty() {
            return self.scores[0];
        }
        let mut at = 0;
        loop {
            let node = &self.index[at..];
            let lo = K::read(&node[LO..]);
            let range = if key < lo {
                node[BELOW]
            } else if key >= K::read(&node[LO + K::WORDS..]) {
                node[ABOVE]
            } else {
                let b = key.minus(lo).bucket(node[SHIFT]);
                let slot = node[LO + 2 * K::WORDS + b];
                if slot & CHILD != 0 {
                    at = (slot & !CHILD) as usize;
                    continue;
                }
                if slot & SCORE != 0 {
                    return slot as u8;
                }
                let first = slot as usize;
                let end = (first + K::LEAF).min(self.starts.len());
                // The leaf's scores are copied before the scan: their read does not wait for
                // the starts' (two memory reads at once, not one after the other).
                let mut scores = [NONE; MAX_LEAF];
                scores[..end - first].copy_from_slice(&self.scores[first..end]);
                // Branch-free: the starts are sorted, so counting those at or below `key`
                // finds the range.
                let after = self.starts[first + 1..end]
                    .iter()
                    .filter(|&&s| s <= key)
                    .count();
                return scores[after];
            };
            return self.scores[range as usize];
        }
    }

    /// Ranges (including those with no score).
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Heap bytes held.
    pub fn mem_size(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<K>()
            + self.scores.capacity()
            + self.index.capacity() * 4
    }

    /// Nodes in the index, and the deepest chain of them (for the benchmark's report).
    pub fn shape(&self) -> (usize, usize) {
        fn depth<K: Key>(r: &Ranges<K>, at: usize) -> usize {
            let node = &r.index[at..];
            let span = K::read(&node[LO + K::WORDS..]).minus(K::read(&node[LO..]));
            let buckets = span.pred().bucket(node[SHIFT]) + 1;
            let slots = &node[LO + 2 * K::WORDS..][..buckets];
            1 + slots
                .iter()
                .filter(|&&s| s & CHILD != 0)
                .map(|&s| depth(r, (s & !CHILD) as usize))
                .max()
                .unwrap_or(0)
        }
        let deepest = if self.index.is_empty() {
            0
        } else {
            depth(self, 0)
        };
        (self.nodes, deepest)
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
        Span { first, len, score }
    }

    /// The longest network holding `key`, by brute force.
    fn brute(spans: &[Span<u32>], key: u32) -> u8 {
        let mut best: Option<(u8, u8)> = None;
        for s in spans {
            let inside = s.first <= key && key <= s.first.last(s.len);
            if inside && best.map_or(true, |(len, _)| s.len >= len) {
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

    #[test]
    fn repeats_keep_the_later_score() {
        let spans = vec![span(0x0A00_0000, 8, 5), span(0x0A00_0000, 8, 7)];
        let (r, repeats) = Ranges::build(spans);
        assert_eq!((r.lookup(0x0A01_0203), repeats), (7, 1));
    }
}
