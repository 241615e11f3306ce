//! The loaded score table: longest-prefix match over every file's networks, one
//! [`Ranges`] per address family.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::file::{self, Entry, LoadError, Prefix};
use super::pages::Memory;
use super::ranges::{Ranges, Span, NONE};

/// What one file contributed to a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    /// The file as given on the command line.
    pub path: PathBuf,
    /// IPv4 networks read (repeats included).
    pub v4: usize,
    /// IPv6 networks read (repeats included).
    pub v6: usize,
}

impl FileSummary {
    /// Lines with a network.
    pub fn entries(&self) -> usize {
        self.v4 + self.v6
    }
}

/// Longest-prefix-match table of scores, immutable once built: a reload builds a new one.
#[derive(Debug, Default)]
pub struct Table {
    v4: Ranges<u32>,
    v6: Ranges<u128>,
    networks: (usize, usize),
    repeats: usize,
    files: Vec<FileSummary>,
    took: Duration,
}

/// The most networks a table takes, over all its files (about 2 GB of index for IPv6 ones).
/// The index addresses its nodes and leaf blocks with 30-bit and 29-bit fields
/// (`src/scores/ranges.rs`), which this keeps out of reach with room to spare; the largest
/// public lists hold a few million networks.
pub const MAX_NETWORKS: usize = 1 << 25;

/// Networks read, before they become ranges.
#[derive(Default)]
struct Builder {
    v4: Vec<Span<u32>>,
    v6: Vec<Span<u128>>,
}

impl Builder {
    fn push(&mut self, entry: Entry) {
        match entry.prefix {
            Prefix::V4 { bits, len } => self.v4.push(Span::new(bits, len, entry.score)),
            Prefix::V6 { bits, len } => self.v6.push(Span::new(bits, len, entry.score)),
        }
    }

    fn build(self, files: Vec<FileSummary>, started: Instant) -> Table {
        let (v4, repeats4) = Ranges::build(self.v4);
        let (v6, repeats6) = Ranges::build(self.v6);
        Table {
            networks: (v4.networks(), v6.networks()),
            v4,
            v6,
            repeats: repeats4 + repeats6,
            files,
            took: started.elapsed(),
        }
    }
}

impl Table {
    /// A table with no network: every lookup misses.
    pub fn new() -> Table {
        Table::default()
    }

    /// A table of `entries`; of the same network given twice, the later one counts.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Table {
        let started = Instant::now();
        let mut builder = Builder::default();
        for entry in entries {
            builder.push(entry);
        }
        builder.build(Vec::new(), started)
    }

    /// Reads `paths` in order into a new table. The same network in several places takes the
    /// score of the last one (a later file overrides an earlier one, so an allow list given
    /// after a block list wins). Any malformed line fails the whole load.
    /// More than [`MAX_NETWORKS`] networks in all fail the load too.
    pub fn load(paths: &[PathBuf]) -> Result<Table, LoadError> {
        Self::load_at_most(paths, MAX_NETWORKS)
    }

    fn load_at_most(paths: &[PathBuf], limit: usize) -> Result<Table, LoadError> {
        let started = Instant::now();
        let mut builder = Builder::default();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            files.push(Self::read_file(path, &mut builder, limit)?);
        }
        Ok(builder.build(files, started))
    }

    fn read_file(
        path: &Path,
        builder: &mut Builder,
        limit: usize,
    ) -> Result<FileSummary, LoadError> {
        let mut summary = FileSummary {
            path: path.to_path_buf(),
            v4: 0,
            v6: 0,
        };
        let mut over = None;
        file::read(path, |entry| {
            if builder.v4.len() + builder.v6.len() == limit {
                // Read on to the end (a malformed line still says so), keeping nothing more.
                over.get_or_insert(summary.entries() + 1);
                return;
            }
            match entry.prefix {
                Prefix::V4 { .. } => summary.v4 += 1,
                Prefix::V6 { .. } => summary.v6 += 1,
            }
            builder.push(entry);
        })?;
        match over {
            Some(nth) => Err(LoadError {
                path: path.to_path_buf(),
                line: None,
                reason: format!(
                    "more than {limit} networks in all (this file's network number {nth} is one \
                     too many): split the lists over several agents"
                ),
            }),
            None => Ok(summary),
        }
    }

    /// The score of the longest network holding `addr`, if any.
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> Option<u8> {
        match addr {
            IpAddr::V4(a) => self.lookup_v4(a),
            IpAddr::V6(a) => self.lookup_v6(a),
        }
    }

    /// [`Table::lookup`] of an IPv4 address.
    #[inline]
    pub fn lookup_v4(&self, addr: Ipv4Addr) -> Option<u8> {
        Some(self.v4.lookup(u32::from(addr))).filter(|&s| s != NONE)
    }

    /// [`Table::lookup`] of an IPv6 address. An IPv4-mapped address (`::ffff:a.b.c.d`) is looked
    /// up as the IPv4 address it carries first, then as written: an IPv4 network is always
    /// longer than the IPv6 networks that hold the whole mapped range.
    #[inline]
    pub fn lookup_v6(&self, addr: Ipv6Addr) -> Option<u8> {
        let bits = u128::from(addr);
        if bits >> 32 == 0xffff {
            if let Some(score) = self.lookup_v4(Ipv4Addr::from(bits as u32)) {
                return Some(score);
            }
        }
        Some(self.v6.lookup(bits)).filter(|&s| s != NONE)
    }

    /// Distinct networks in the table.
    pub fn len(&self) -> usize {
        self.networks.0 + self.networks.1
    }

    /// Whether the table has no network.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct IPv4 and IPv6 networks.
    pub fn families(&self) -> (usize, usize) {
        self.networks
    }

    /// Networks given more than once (the later score was kept).
    pub fn repeats(&self) -> usize {
        self.repeats
    }

    /// What each file contributed, in load order.
    pub fn files(&self) -> &[FileSummary] {
        &self.files
    }

    /// How long building took ([`Table::load`]: reading and parsing the files too).
    pub fn load_time(&self) -> Duration {
        self.took
    }

    /// Bytes held by the lookup structure (heap and huge pages).
    pub fn mem_size(&self) -> usize {
        self.memory().total()
    }

    /// Memory held by the lookup structure, by where it is: the large arrays on huge pages
    /// where the kernel gives them ([`Memory::refused`] says why not).
    pub fn memory(&self) -> Memory {
        let (v4, v6) = (self.v4.memory(), self.v6.memory());
        Memory {
            heap: v4.heap + v6.heap,
            huge: v4.huge + v6.huge,
            small: v4.small + v6.small,
            refused: v4.refused.or(v6.refused),
        }
    }

    /// Address ranges, index nodes, deepest index chain and leaf blocks, IPv4 then IPv6 (for
    /// the benchmark).
    pub fn shape(&self) -> [(usize, usize, usize, usize); 2] {
        let (n4, d4, b4) = self.v4.shape();
        let (n6, d6, b6) = self.v6.shape();
        [(self.v4.len(), n4, d4, b4), (self.v6.len(), n6, d6, b6)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(lines: &str) -> Table {
        Table::from_entries(lines.lines().filter_map(|l| file::parse_line(l).unwrap()))
    }

    fn score(t: &Table, addr: &str) -> Option<u8> {
        t.lookup(addr.parse().unwrap())
    }

    #[test]
    fn longest_prefix_wins_at_the_edges() {
        let t = table(
            "10.0.0.0/8 50\n10.1.0.0/16 20\n10.1.2.0/24 5\n10.1.2.3 0\n\
             2001:db8::/32 60\n2001:db8:1::/48 30\n2001:db8:1::1 1\n",
        );
        for (addr, want) in [
            ("9.255.255.255", None),
            ("10.0.0.0", Some(50)),
            ("10.0.255.255", Some(50)),
            ("10.1.0.0", Some(20)),
            ("10.1.1.255", Some(20)),
            ("10.1.2.0", Some(5)),
            ("10.1.2.2", Some(5)),
            ("10.1.2.3", Some(0)),
            ("10.1.2.4", Some(5)),
            ("10.1.2.255", Some(5)),
            ("10.1.3.0", Some(20)),
            ("10.1.255.255", Some(20)),
            ("10.2.0.0", Some(50)),
            ("10.255.255.255", Some(50)),
            ("11.0.0.0", None),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("2001:db8::", Some(60)),
            ("2001:db8:0:ffff::", Some(60)),
            ("2001:db8:1::", Some(30)),
            ("2001:db8:1::1", Some(1)),
            ("2001:db8:1::2", Some(30)),
            ("2001:db8:1:ffff:ffff:ffff:ffff:ffff", Some(30)),
            ("2001:db8:2::", Some(60)),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Some(60)),
            ("2001:db9::", None),
            ("::ffff:10.1.2.3", Some(0)),
            ("::ffff:11.0.0.0", None),
        ] {
            assert_eq!(score(&t, addr), want, "{addr}");
        }
        assert_eq!(t.len(), 7);
        assert_eq!(t.families(), (4, 3));
    }

    #[test]
    fn default_routes_and_mapped_addresses() {
        let t = table("0.0.0.0/0 40\n::/0 70\n::ffff:0:0/96 80\n");
        assert_eq!(t.families(), (1, 1), "::ffff:0:0/96 is 0.0.0.0/0, replaced");
        assert_eq!(score(&t, "203.0.113.9"), Some(80));
        assert_eq!(score(&t, "::ffff:203.0.113.9"), Some(80));
        assert_eq!(score(&t, "2001:db8::9"), Some(70));
        let t = table("::/0 70\n");
        assert_eq!(score(&t, "::ffff:203.0.113.9"), Some(70), "IPv6 fallback");
        assert_eq!(score(&t, "203.0.113.9"), None);
    }

    #[test]
    fn a_later_entry_replaces_an_earlier_one() {
        let t = table("192.0.2.0/24 5\n192.0.2.0/24 90\n");
        assert_eq!(score(&t, "192.0.2.1"), Some(90));
        assert_eq!(t.len(), 1);
    }

    /// Score files with these contents in a fresh directory named for `test`: the directory
    /// (to remove) and the files.
    fn files(test: &str, contents: &[&str]) -> (PathBuf, Vec<PathBuf>) {
        let dir = std::env::temp_dir().join(format!("spoa-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let paths = contents
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let path = dir.join(format!("{i}.scores"));
                std::fs::write(&path, text).unwrap();
                path
            })
            .collect();
        (dir, paths)
    }

    #[test]
    fn load_reads_files_in_order_and_counts() {
        let (dir, paths) = files(
            "scores-table",
            &[
                "192.0.2.0/24 5\n2001:db8::/32 5\n198.51.100.0/24 5\n",
                "# allow\n192.0.2.0/24 100\n192.0.2.128/25 90\n",
            ],
        );
        let (block, allow) = (paths[0].clone(), paths[1].clone());
        let t = Table::load(&[block.clone(), allow.clone()]).unwrap();
        assert_eq!(score(&t, "192.0.2.1"), Some(100));
        assert_eq!(score(&t, "192.0.2.200"), Some(90));
        assert_eq!(score(&t, "198.51.100.1"), Some(5));
        assert_eq!(t.len(), 4);
        let files = t.files();
        assert_eq!((files[0].v4, files[0].v6), (2, 1));
        assert_eq!((files[1].entries(), t.repeats()), (2, 1));
        let t = Table::load(&[allow, block]).unwrap();
        assert_eq!(score(&t, "192.0.2.1"), Some(5), "the later file wins");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn more_networks_than_the_limit_fail_the_load_naming_the_file() {
        let (dir, both) = files(
            "scores-limit",
            &[
                "192.0.2.0/24 5\n2001:db8::/32 5\n",
                "# more\n198.51.100.0/24 5\n203.0.113.0/24 5\n",
            ],
        );
        assert!(Table::load_at_most(&both, 4).is_ok(), "at the limit");
        let e = Table::load_at_most(&both, 3).unwrap_err();
        assert_eq!(e.path, both[1]);
        assert!(
            e.reason
                .starts_with("more than 3 networks in all (this file's network number 2 "),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    mod property {
        use super::super::*;
        use proptest::prelude::*;

        /// The score the table must give `addr`, from the entries alone: of the networks
        /// holding it ([`Prefix::contains`]), an IPv4 one before any IPv6 one (for a mapped
        /// address), then the longest, then the later line.
        fn expected(entries: &[Entry], addr: IpAddr) -> Option<u8> {
            let mut best: Option<((bool, u8), u8)> = None;
            for e in entries.iter().filter(|e| e.prefix.contains(addr)) {
                let rank = (matches!(e.prefix, Prefix::V4 { .. }), e.prefix.prefix_len());
                if best.is_none_or(|(r, _)| rank >= r) {
                    best = Some((rank, e.score));
                }
            }
            best.map(|b| b.1)
        }

        /// The first and last address of a network, the ones either side, and each IPv4
        /// address also written IPv4-mapped (and a mapped one also as IPv4).
        fn edges(p: Prefix) -> Vec<IpAddr> {
            let mut addrs: Vec<IpAddr> = Vec::new();
            match p {
                Prefix::V4 { bits, len } => {
                    let last = bits | u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                    for a in [
                        Some(bits),
                        Some(last),
                        bits.checked_sub(1),
                        last.checked_add(1),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        addrs.push(IpAddr::V4(Ipv4Addr::from(a)));
                        addrs.push(IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped()));
                    }
                }
                Prefix::V6 { bits, len } => {
                    let last = bits | u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                    for a in [
                        Some(bits),
                        Some(last),
                        bits.checked_sub(1),
                        last.checked_add(1),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        let a = Ipv6Addr::from(a);
                        addrs.push(IpAddr::V6(a));
                        if let Some(v4) = a.to_ipv4_mapped() {
                            addrs.push(IpAddr::V4(v4));
                        }
                    }
                }
            }
            addrs
        }

        /// A network near 10.0.0.0, 2001:db8:: or inside ::ffff:0:0/96 (where IPv4-mapped
        /// addresses are), read as a score file line is.
        fn entry() -> impl Strategy<Value = Entry> {
            let v4 = (any::<u32>(), 0u32..=32, 0u8..=32).prop_map(|(noise, spread, len)| {
                let bits = 0x0a00_0000 ^ noise.checked_shr(32 - spread).unwrap_or(0);
                Prefix::V4 { bits, len }
            });
            let v6 = (any::<u128>(), 0u32..=128, 0u8..=128, any::<bool>()).prop_map(
                |(noise, spread, len, mapped)| {
                    let base = if mapped {
                        0xffff_0a00_0000
                    } else {
                        0x2001_0db8 << 96
                    };
                    let bits = base ^ noise.checked_shr(128 - spread).unwrap_or(0);
                    Prefix::V6 { bits, len }
                },
            );
            (prop_oneof![v4, v6], 0u8..=100).prop_map(|(prefix, score)| {
                let line = format!("{} {score}", prefix.network());
                file::parse_line(&line)
                    .expect("a network the generator made")
                    .expect("not a comment")
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn lookups_match_the_longest_network_of_either_family(
                entries in proptest::collection::vec(entry(), 1..120),
            ) {
                let table = Table::from_entries(entries.iter().copied());
                for addr in entries.iter().flat_map(|e| edges(e.prefix)) {
                    prop_assert_eq!(table.lookup(addr), expected(&entries, addr), "{}", addr);
                }
            }
        }
    }
}
