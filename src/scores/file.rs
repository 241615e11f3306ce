//! The score file format: one `CIDR SCORE` per line.
//!
//! ```text
//! # FireHOL level 1, scored as abusive
//! 192.0.2.0/24      5
//! 198.51.100.7      0      # a plain address is a /32 (IPv4) or a /128 (IPv6)
//! 2001:db8::/32     10
//! ```
//!
//! Blank lines and everything from `#` to the end of a line are ignored; fields are separated by
//! spaces or tabs. Anything else is an error naming the line and the reason, so that a typo never
//! turns into a silently different block list.

use std::fmt;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// The highest score, and so the range of a valid one (`0..=MAX_SCORE`), the range HAProxy's ACLs
/// on `ip_score` expect.
pub const MAX_SCORE: u8 = 100;

/// A network of a score file, with its host bits zero.
///
/// IPv4-mapped IPv6 networks (`::ffff:192.0.2.0/120`) are stored as the IPv4 network they
/// describe, since the handler looks mapped client addresses up as IPv4 (as HAProxy's own
/// IPv4 ACL patterns match them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    /// An IPv4 network: address bits, most significant first, and prefix length 0..=32.
    V4 {
        /// The network address as an integer.
        bits: u32,
        /// The prefix length.
        len: u8,
    },
    /// An IPv6 network: address bits and prefix length 0..=128.
    V6 {
        /// The network address as an integer.
        bits: u128,
        /// The prefix length.
        len: u8,
    },
}

/// `::ffff:0:0/96`, where IPv4-mapped IPv6 addresses live.
const MAPPED: u128 = 0xffff_0000_0000;

impl Prefix {
    /// Parses `ADDRESS/LEN` or a plain `ADDRESS`; refuses host bits set beyond the length.
    pub fn parse(text: &str) -> Result<Prefix, String> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(len) => match len.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("prefix length '/{len}' is not 0..={max}")),
            },
        };
        let prefix = match addr {
            IpAddr::V4(a) => Prefix::V4 {
                bits: u32::from(a),
                len,
            },
            IpAddr::V6(a) => Prefix::V6 {
                bits: u128::from(a),
                len,
            },
        };
        let network = prefix.network();
        if network != prefix {
            return Err(format!(
                "host bits set after /{len}: the network is {network} (or use a longer prefix)"
            ));
        }
        Ok(prefix.unmapped())
    }

    /// The prefix with its host bits cleared.
    pub fn network(self) -> Prefix {
        match self {
            Prefix::V4 { bits, len } => Prefix::V4 {
                bits: bits & mask32(len),
                len,
            },
            Prefix::V6 { bits, len } => Prefix::V6 {
                bits: bits & mask128(len),
                len,
            },
        }
    }

    /// An IPv6 network inside `::ffff:0:0/96` as the IPv4 network it means; others unchanged.
    fn unmapped(self) -> Prefix {
        match self {
            Prefix::V6 { bits, len } if len >= 96 && bits >> 32 == MAPPED >> 32 => Prefix::V4 {
                bits: bits as u32,
                len: len - 96,
            },
            other => other,
        }
    }

    /// The prefix length.
    pub fn prefix_len(self) -> u8 {
        match self {
            Prefix::V4 { len, .. } | Prefix::V6 { len, .. } => len,
        }
    }

    /// Whether `addr` is inside this network. An IPv4-mapped IPv6 address is inside the IPv4
    /// networks that hold the address it carries, and inside the IPv6 networks that hold it as
    /// written (`::/0`, `::ffff:0:0/96` and shorter).
    pub fn contains(self, addr: IpAddr) -> bool {
        match (self, addr) {
            (Prefix::V4 { bits, len }, addr) => match unmap(addr) {
                IpAddr::V4(a) => u32::from(a) & mask32(len) == bits,
                IpAddr::V6(_) => false,
            },
            (Prefix::V6 { bits, len }, IpAddr::V6(a)) => u128::from(a) & mask128(len) == bits,
            (Prefix::V6 { .. }, IpAddr::V4(_)) => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Prefix::V4 { bits, len } => write!(f, "{}/{len}", Ipv4Addr::from(bits)),
            Prefix::V6 { bits, len } => write!(f, "{}/{len}", Ipv6Addr::from(bits)),
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries; any other address unchanged.
pub fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(a),
        },
        v4 => v4,
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// One line's network and its score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The network.
    pub prefix: Prefix,
    /// Its score, `0..=MAX_SCORE`.
    pub score: u8,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.prefix, self.score)
    }
}

/// Parses one line: `Ok(None)` for a blank or comment line, the reason when it is malformed.
pub fn parse_line(line: &str) -> Result<Option<Entry>, String> {
    let content = line.split_once('#').map_or(line, |(before, _)| before);
    let mut fields = content.split_ascii_whitespace();
    let Some(network) = fields.next() else {
        return Ok(None);
    };
    let prefix = Prefix::parse(network)?;
    let Some(score) = fields.next() else {
        return Err(format!(
            "no score after '{network}' (lines are: CIDR SCORE)"
        ));
    };
    let score = match score.parse::<i64>() {
        Ok(s) if (0..=i64::from(MAX_SCORE)).contains(&s) => s as u8,
        Ok(s) => return Err(format!("score {s} is outside 0..={MAX_SCORE}")),
        Err(_) => return Err(format!("score '{score}' is not an integer 0..={MAX_SCORE}")),
    };
    if let Some(extra) = fields.next() {
        return Err(format!(
            "unexpected '{extra}' after the score (lines are: CIDR SCORE; comments start with #)"
        ));
    }
    Ok(Some(Entry { prefix, score }))
}

/// Why a score file could not be loaded: the file, the line (1-based) when one is at fault, and
/// the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// The line, when the error is about one.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

impl std::error::Error for LoadError {}

/// Longest line kept in an error message.
const QUOTED: usize = 60;

/// Reads a score file line by line (no copy of the whole file is held), calling `entry` for
/// every entry in file order; stops at the first malformed line.
pub fn read(path: &Path, mut entry: impl FnMut(Entry)) -> Result<(), LoadError> {
    let error = |line: Option<usize>, reason: String| LoadError {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| error(None, format!("cannot open: {e}")))?;
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
    let mut buf = Vec::with_capacity(256);
    let mut number = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| error(None, format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let line =
            std::str::from_utf8(&buf).map_err(|_| error(Some(number), "not UTF-8 text".into()))?;
        match parse_line(line) {
            Ok(Some(e)) => entry(e),
            Ok(None) => {}
            Err(reason) => {
                let text = line.trim();
                let quoted: String = text.chars().take(QUOTED).collect();
                let ellipsis = if quoted.len() < text.len() { "..." } else { "" };
                return Err(error(
                    Some(number),
                    format!("{reason} (line: \"{quoted}{ellipsis}\")"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str) -> Entry {
        parse_line(line).unwrap().unwrap()
    }

    fn reason(line: &str) -> String {
        parse_line(line).unwrap_err()
    }

    #[test]
    fn lines_in_every_accepted_form() {
        assert_eq!(
            entry("192.0.2.0/24 5"),
            Entry {
                prefix: Prefix::V4 {
                    bits: 0xC000_0200,
                    len: 24
                },
                score: 5
            }
        );
        assert_eq!(entry("\t192.0.2.7 \t 0  # note").prefix.prefix_len(), 32);
        assert_eq!(entry("2001:db8::1 100").prefix.prefix_len(), 128);
        assert_eq!(entry("2001:db8::/32 7").to_string(), "2001:db8::/32 7");
        assert_eq!(entry("0.0.0.0/0 50").prefix.prefix_len(), 0);
        assert_eq!(entry("::/0 50").prefix.to_string(), "::/0");
        assert_eq!(
            entry("::ffff:192.0.2.0/120 1").to_string(),
            "192.0.2.0/24 1"
        );
        assert_eq!(entry("::ffff:0:0/96 1").to_string(), "0.0.0.0/0 1");
        assert_eq!(entry("::fffe:0:0/96 1").to_string(), "::fffe:0:0/96 1");
        for blank in ["", "   ", "\n", "# comment", "   # indented comment\r\n"] {
            assert_eq!(parse_line(blank), Ok(None), "{blank:?}");
        }
        assert_eq!(entry("10.0.0.0/8 1\r\n").score, 1);
    }

    #[test]
    fn malformed_lines_say_why() {
        assert!(reason("192.0.2.0/24").contains("no score"));
        assert!(reason("192.0.2.0/24 101").contains("101 is outside 0..=100"));
        assert!(reason("192.0.2.0/24 -1").contains("-1 is outside"));
        assert!(reason("192.0.2.0/24 high").contains("'high' is not an integer"));
        assert!(reason("192.0.2.0/24 5.5").contains("not an integer"));
        assert!(reason("192.0.2.0/24 5 6").contains("unexpected '6'"));
        assert!(reason("192.0.2.0/33 5").contains("'/33' is not 0..=32"));
        assert!(reason("2001:db8::/129 5").contains("0..=128"));
        assert!(reason("192.0.2.0/ 5").contains("prefix length"));
        assert!(reason("192.0.2.1/24 5").contains("network is 192.0.2.0/24"));
        assert!(reason("2001:db8::1/32 5").contains("network is 2001:db8::/32"));
        assert!(reason("example.com 5").contains("not an IPv4 or IPv6 address"));
        assert!(reason("192.0.2 5").contains("not an IPv4"));
        assert!(reason("192.0.2.0,24 5").contains("not an IPv4"));
    }

    #[test]
    fn contains_matches_the_edges_only() {
        let p = Prefix::parse("192.0.2.0/24").unwrap();
        assert!(p.contains("192.0.2.0".parse().unwrap()));
        assert!(p.contains("192.0.2.255".parse().unwrap()));
        assert!(p.contains("::ffff:192.0.2.9".parse().unwrap()));
        assert!(!p.contains("192.0.3.0".parse().unwrap()));
        assert!(!p.contains("192.0.1.255".parse().unwrap()));
        assert!(!p.contains("2001:db8::".parse().unwrap()));
        let all = Prefix::parse("::/0").unwrap();
        assert!(all.contains("2001:db8::".parse().unwrap()));
        assert!(all.contains("::ffff:192.0.2.9".parse().unwrap()));
        assert!(!all.contains("192.0.2.9".parse().unwrap()));
    }

    #[test]
    fn read_names_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("spoa-scores-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.txt");
        std::fs::write(&path, "# ok\n10.0.0.0/8 1\n\n10.0.0.0/8 1000\n").unwrap();
        let mut seen = Vec::new();
        let err = read(&path, |e| seen.push(e)).unwrap_err();
        assert_eq!(err.line, Some(4));
        assert_eq!(seen.len(), 1);
        let text = err.to_string();
        assert!(text.starts_with(&format!("{}:4: score 1000", path.display())));
        assert!(text.contains("line: \"10.0.0.0/8 1000\""), "{text}");

        std::fs::write(&path, b"10.0.0.0/8 1\n\xff\xfe 1\n").unwrap();
        let err = read(&path, |_| {}).unwrap_err();
        assert_eq!((err.line, err.reason.as_str()), (Some(2), "not UTF-8 text"));

        let missing = dir.join("missing.txt");
        let err = read(&missing, |_| {}).unwrap_err();
        assert_eq!(err.line, None);
        assert!(err.to_string().contains("cannot open"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
