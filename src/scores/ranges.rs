//! Longest-prefix match as disjoint ranges under a small radix index.
//!
//! Networks nest or are disjoint, so a set of networks with scores is the same thing as a
//! sorted list of disjoint address ranges, each with the score of the longest network holding
//! it (or none). A lookup is then "the last range that starts at or below the address". Found by
//! binary search over a million ranges, that is some twenty dependent memory reads, and on the
//! build machine a read that misses the caches costs 200 to 400 ns: too slow for the 100 ns
//! goal. So the ranges sit under an index that jumps near the answer in one to three reads:
//!
//! - a node splits the addresses it covers into 2^bits buckets (65,536 at the root);
//! - a bucket that lies inside one range holds that range's score itself (most misses, and
//!   hits inside wide networks, end there: one read);
//! - a bucket over at most [`LEAF`] ranges holds the first of them: a branch-free scan of at
//!   most [`LEAF`] starts then finds the range;
//! - a bucket over more ranges holds a child node, whose span is narrowed to the starts it
//!   holds (so a cluster of networks deep in IPv6 space costs no empty levels).
//!
//! Measured in `benches/scores.rs` against tree bitmaps (`prefix-trie`, `ip_network_table`), a
//! binary trie, an LC-trie (`iptrie`) and plain binary search over these same ranges: the only
//! one under both the lookup (100 ns) and the memory (64 MiB) goals for 1,000,000 prefixes.

use std::fmt::Debug;

/// Ranges a leaf bucket may hold: 16 IPv4 starts are one cache line.
pub const LEAF: usize = 16;
/// Buckets of the root node, as a power of two (256 KiB of slots).
const ROOT_BITS: u32 = 16;
/// Buckets of a child node, at most, as a power of two.
const CHILD_BITS: u32 = 10;

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
}

macro_rules! key {
    ($t:ty) => {
        impl Key for $t {
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

key!(u32);
key!(u128);

/// An index node: buckets over the keys `lo..hi`; keys below `lo` are in range `below`, keys at
/// or above `hi` in range `above`.
#[derive(Clone, Copy, Debug)]
struct Node<K> {
    lo: K,
    hi: K,
    shift: u32,
    slots: u32,
    below: u32,
    above: u32,
}

/// Disjoint ranges with scores, indexed. Immutable once built.
#[derive(Clone, Debug)]
pub struct Ranges<K> {
    /// `starts[i]..starts[i + 1]` has `scores[i]`; `starts[0]` is 0.
    starts: Vec<K>,
    scores: Vec<u8>,
    nodes: Vec<Node<K>>,
    slots: Vec<u32>,
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
            nodes: Vec::new(),
            slots: Vec::new(),
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
        self.nodes.shrink_to_fit();
        self.slots.shrink_to_fit();
    }

    /// Adds the node over ranges `i..=j` (more than [`LEAF`] of them); returns its index.
    fn node(&mut self, i: usize, j: usize, max_bits: u32) -> u32 {
        let lo = self.starts[i + 1];
        let hi = self.starts[j];
        let span = hi.minus(lo);
        // About four ranges per bucket, within the node's limit.
        let count = (j - i + 1) as u32;
        let bits = (count.next_power_of_two().trailing_zeros())
            .saturating_sub(2)
            .clamp(1, max_bits);
        let shift = span.pred().width().saturating_sub(bits);
        let buckets = span.pred().bucket(shift) + 1;
        let id = self.nodes.len() as u32;
        let first_slot = self.slots.len();
        self.nodes.push(Node {
            lo,
            hi,
            shift,
            slots: first_slot as u32,
            below: i as u32,
            above: j as u32,
        });
        self.slots.resize(first_slot + buckets, 0);
        let step = K::from_bucket(1, shift);
        for b in 0..buckets {
            let first = lo.plus(K::from_bucket(b, shift));
            let last = first.plus(step.pred()).min(hi.pred());
            let bi = self.range_of(first);
            let bj = self.range_of(last);
            let slot = if bi == bj {
                SCORE | u32::from(self.scores[bi])
            } else if bj - bi < LEAF {
                bi as u32
            } else {
                CHILD | self.node(bi, bj, CHILD_BITS)
            };
            self.slots[first_slot + b] = slot;
        }
        id
    }

    /// The score of the range holding `key` ([`NONE`]: no network).
    #[inline]
    pub fn lookup(&self, key: K) -> u8 {
        let Some(mut node) = self.nodes.first() else {
            return self.scores[0];
        };
        loop {
            let range = if key < node.lo {
                node.below
            } else if key >= node.hi {
                node.above
            } else {
                let slot = self.slots[node.slots as usize + key.minus(node.lo).bucket(node.shift)];
                if slot & CHILD != 0 {
                    node = &self.nodes[(slot & !CHILD) as usize];
                    continue;
                }
                if slot & SCORE != 0 {
                    return slot as u8;
                }
                let first = slot as usize;
                let end = (first + LEAF).min(self.starts.len());
                // Branch-free: the starts are sorted, so counting those at or below `key`
                // finds the range.
                let after = self.starts[first + 1..end]
                    .iter()
                    .filter(|&&s| s <= key)
                    .count();
                (first + after) as u32
            };
            return self.scores[range as usize];
        }
    }

    /// Distinct networks the ranges were built from.
    pub fn networks(&self) -> usize {
        self.networks
    }

    /// Ranges (including those with no score).
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Heap bytes held.
    pub fn mem_size(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<K>()
            + self.scores.capacity()
            + self.nodes.capacity() * std::mem::size_of::<Node<K>>()
            + self.slots.capacity() * 4
    }

    /// Nodes in the index, and the deepest chain of them (for the benchmark's report).
    pub fn shape(&self) -> (usize, usize) {
        fn depth<K>(r: &Ranges<K>, node: usize) -> usize {
            let n = &r.nodes[node];
            let slots = &r.slots[n.slots as usize..];
            let next = r
                .nodes
                .get(node + 1)
                .map_or(r.slots.len(), |m| m.slots as usize);
            1 + slots[..next - n.slots as usize]
                .iter()
                .filter(|&&s| s & CHILD != 0)
                .map(|&s| depth(r, (s & !CHILD) as usize))
                .max()
                .unwrap_or(0)
        }
        let deepest = if self.nodes.is_empty() {
            0
        } else {
            depth(self, 0)
        };
        (self.nodes.len(), deepest)
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
