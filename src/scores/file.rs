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
use std::io::Read;
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
    ///
    /// The address is read as `std::net::IpAddr`'s parser reads it (the same forms accepted and
    /// refused) and the length as `u8`'s (an optional `+`, decimal digits), but from the bytes,
    /// without the parsers' backtracking: a score file has a million of them.
    pub fn parse(text: &str) -> Result<Prefix, String> {
        let bytes = text.as_bytes();
        let slash = bytes.iter().position(|&b| b == b'/');
        let addr = &bytes[..slash.unwrap_or(bytes.len())];
        // As `IpAddr`'s parser: IPv4 first. No text read as IPv6 starts with an IPv4 address, so
        // trying IPv6 after IPv4 failed on any part of the text accepts what it accepts.
        let parsed = match ipv4(addr) {
            Some(v4) => Some((Bits::V4(v4), 32)),
            None => ipv6(addr).map(|v6| (Bits::V6(v6), 128)),
        };
        let Some((bits, max)) = parsed else {
            let addr = &text[..slash.unwrap_or(text.len())];
            return Err(format!("'{addr}' is not an IPv4 or IPv6 address"));
        };
        let len = match slash {
            None => max,
            Some(at) => match decimal_u8(&bytes[at + 1..]) {
                Some(n) if n <= max => n,
                _ => {
                    let len = &text[at + 1..];
                    return Err(format!("prefix length '/{len}' is not 0..={max}"));
                }
            },
        };
        bits.network(len).map_err(|network| {
            format!("host bits set after /{len}: the network is {network} (or use a longer prefix)")
        })
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

/// An address's bits, before its prefix length is known.
enum Bits {
    V4(u32),
    V6(u128),
}

impl Bits {
    /// The network of `len` bits at these (IPv4-mapped ones as IPv4), or the network they are
    /// in if host bits are set.
    fn network(self, len: u8) -> Result<Prefix, Prefix> {
        let prefix = match self {
            Bits::V4(bits) => Prefix::V4 { bits, len },
            Bits::V6(bits) => Prefix::V6 { bits, len },
        };
        let network = prefix.network();
        match network == prefix {
            true => Ok(prefix.unmapped()),
            false => Err(network),
        }
    }
}

/// A dotted-decimal IPv4 address as `Ipv4Addr`'s parser reads it: four parts of one to three
/// digits, each at most 255, none with a leading zero (`01` would read as octal elsewhere).
fn ipv4(s: &[u8]) -> Option<u32> {
    ipv4_at_start(s)
        .filter(|&(_, end)| end == s.len())
        .map(|(bits, _)| bits)
}

/// The IPv4 address at the start of `s`, as [`ipv4`] reads it, ending at the first byte that
/// is neither a digit nor a dot: its bits and where it ends.
#[inline]
fn ipv4_at_start(s: &[u8]) -> Option<(u32, usize)> {
    let (mut bits, mut part, mut digits, mut dots) = (0u32, 0u32, 0u32, 0u32);
    let mut at = 0;
    while let Some(&b) = s.get(at) {
        if b.is_ascii_digit() {
            // A fourth digit, or a digit after a leading zero.
            if digits == 3 || (digits == 1 && part == 0) {
                return None;
            }
            part = part * 10 + u32::from(b - b'0');
            digits += 1;
        } else if b == b'.' {
            if digits == 0 || part > 255 || dots == 3 {
                return None;
            }
            bits = bits << 8 | part;
            (part, digits, dots) = (0, 0, dots + 1);
        } else {
            break;
        }
        at += 1;
    }
    (dots == 3 && digits > 0 && part <= 255).then_some((bits << 8 | part, at))
}

/// The value of each byte as a hex digit, or [`NOT_HEX`].
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => c - b'A' + 10,
            _ => NOT_HEX,
        };
        b += 1;
    }
    table
};
const NOT_HEX: u8 = 0xff;

/// An IPv6 address as `Ipv6Addr`'s parser reads it: eight groups of one to four hex digits
/// separated by `:`, the last two of which may be written as an IPv4 address; or fewer groups
/// with one `::` among them standing for at least one zero group.
fn ipv6(s: &[u8]) -> Option<u128> {
    // The groups before the `::` (all of them without one), and those after it.
    let (mut head, mut tail) = (0u128, 0u128);
    let (mut n, mut gap) = (0u32, None);
    let mut at = 0;
    if s.starts_with(b"::") {
        (gap, at) = (Some(0), 2);
    }
    while at < s.len() {
        let start = at;
        let mut group = 0u32;
        while let Some(&digit) = s.get(at).map(|&b| &HEX[usize::from(b)]) {
            if digit == NOT_HEX {
                break;
            }
            if at - start == 4 {
                return None;
            }
            group = group << 4 | u32::from(digit);
            at += 1;
        }
        let (value, groups, width) = if s.get(at) == Some(&b'.') {
            // An IPv4 address: the last thing in the text, two groups.
            let v4 = ipv4(&s[start..])?;
            at = s.len();
            (v4, 2, 32)
        } else if at > start {
            (group, 1, 16)
        } else {
            return None;
        };
        n += groups;
        if n > 8 {
            return None;
        }
        match gap {
            None => head = head << width | u128::from(value),
            Some(_) => tail = tail << width | u128::from(value),
        }
        match s.get(at..at + 2) {
            None if at == s.len() => {}
            Some(b"::") if gap.is_none() => {
                gap = Some(n);
                at += 2;
            }
            // A colon ends a group only if another group follows.
            Some([b':', c]) if *c != b':' => at += 1,
            _ => return None,
        }
    }
    match gap {
        None if n == 8 => Some(head),
        // `::` stands for at least one zero group: the head's groups go above them all.
        Some(before) if n <= 7 => Some(head.checked_shl(16 * (8 - before)).unwrap_or(0) | tail),
        _ => None,
    }
}

/// A prefix length as `u8`'s parser reads it: [`decimal_i64`]'s grammar without the `-`, up to
/// 255.
fn decimal_u8(s: &[u8]) -> Option<u8> {
    match s {
        [b'-', ..] => None,
        _ => decimal_i64(s).and_then(|v| u8::try_from(v).ok()),
    }
}

/// A score as `i64`'s parser reads it: an optional sign, then decimal digits, within `i64`.
fn decimal_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'+', rest @ ..] if !rest.is_empty() => (false, rest),
        [b'-', rest @ ..] if !rest.is_empty() => (true, rest),
        [] => return None,
        _ => (false, s),
    };
    let mut v = 0i64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if negative {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

/// The fields of a line's content, as `str::split_ascii_whitespace` splits them, ending at the
/// first `#`.
struct Fields<'a> {
    line: &'a str,
    at: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.line.as_bytes();
        let mut at = self.at;
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while at < bytes.len() && !bytes[at].is_ascii_whitespace() && bytes[at] != b'#' {
            at += 1;
        }
        // A comment ends the fields: the next call finds nothing.
        self.at = if bytes.get(at) == Some(&b'#') {
            bytes.len()
        } else {
            at
        };
        // Whitespace and `#` are ASCII: `start` and `at` are character boundaries.
        self.line.get(start..at).filter(|f| !f.is_empty())
    }
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
/// Allocates only for the reason.
pub fn parse_line(line: &str) -> Result<Option<Entry>, String> {
    let mut fields = Fields { line, at: 0 };
    let Some(network) = fields.next() else {
        return Ok(None);
    };
    let prefix = Prefix::parse(network)?;
    let Some(score) = fields.next() else {
        return Err(format!(
            "no score after '{network}' (lines are: CIDR SCORE)"
        ));
    };
    let score = match decimal_i64(score.as_bytes()) {
        Some(s) if (0..=i64::from(MAX_SCORE)).contains(&s) => s as u8,
        Some(s) => return Err(format!("score {s} is outside 0..={MAX_SCORE}")),
        None => return Err(format!("score '{score}' is not an integer 0..={MAX_SCORE}")),
    };
    if let Some(extra) = fields.next() {
        return Err(format!(
            "unexpected '{extra}' after the score (lines are: CIDR SCORE; comments start with #)"
        ));
    }
    Ok(Some(Entry { prefix, score }))
}

/// The usual line, `ADDRESS[/LEN] SCORE` then a newline (or, with `end_ok`, the end of `b`),
/// read in one pass from the start of `b`: its entry and length. `None` for any other line
/// (comments, other spacing, leading zeros in a score, anything malformed), which
/// [`parse_line`] reads then; where this gives an entry, `parse_line` gives the same.
#[inline]
fn usual_line(b: &[u8], end_ok: bool) -> Option<(Entry, usize)> {
    let v4 = ipv4_at_start(b).filter(|&(_, end)| matches!(b.get(end), Some(b'/' | b' ' | b'\t')));
    let (bits, max, mut at) = if let Some((v4, end)) = v4 {
        (Bits::V4(v4), 32, end)
    } else {
        // Anything else: an IPv6 address, read once its end is found.
        let end = b
            .iter()
            .position(|&c| matches!(c, b'/' | b' ' | b'\t' | b'\n' | b'\r' | b'#'))
            .filter(|&end| matches!(b[end], b'/' | b' ' | b'\t'))?;
        (Bits::V6(ipv6(&b[..end])?), 128, end)
    };
    let len = if b.get(at) == Some(&b'/') {
        at += 1;
        let (len, n) = digits_at(b, at)?;
        at += n;
        u8::try_from(len).ok().filter(|&len| len <= max)?
    } else {
        max
    };
    let gap = blanks_at(b, at);
    if gap == 0 {
        return None;
    }
    at += gap;
    let (score, n) = digits_at(b, at)?;
    at += n + blanks_at(b, at + n);
    if score > u32::from(MAX_SCORE) {
        return None;
    }
    if b.get(at) == Some(&b'\r') {
        at += 1;
    }
    match b.get(at) {
        Some(b'\n') => at += 1,
        None if end_ok => {}
        _ => return None,
    }
    let prefix = bits.network(len).ok()?;
    Some((
        Entry {
            prefix,
            score: score as u8,
        },
        at,
    ))
}

/// One to three decimal digits at `b[at..]`: their value and count.
#[inline]
fn digits_at(b: &[u8], at: usize) -> Option<(u32, usize)> {
    let mut value = 0;
    let mut n = 0;
    while let Some(&c @ b'0'..=b'9') = b.get(at + n) {
        if n == 3 {
            return None;
        }
        value = value * 10 + u32::from(c - b'0');
        n += 1;
    }
    (n > 0).then_some((value, n))
}

/// Spaces and tabs at `b[at..]`.
#[inline]
fn blanks_at(b: &[u8], at: usize) -> usize {
    let mut n = 0;
    while let Some(b' ' | b'\t') = b.get(at + n) {
        n += 1;
    }
    n
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

/// Bytes read from a score file at a time: lines are parsed where they were read, while they
/// are in the cache.
const CHUNK: usize = 64 * 1024;

/// Reads a score file in chunks (no copy of the whole file is held, and no line is copied),
/// calling `entry` for every entry in file order; stops at the first malformed line.
pub fn read(path: &Path, entry: impl FnMut(Entry)) -> Result<(), LoadError> {
    read_chunks(path, CHUNK, entry)
}

/// [`read`], `chunk` bytes at a time (more for a longer line).
fn read_chunks(path: &Path, chunk: usize, mut entry: impl FnMut(Entry)) -> Result<(), LoadError> {
    let error = |line: Option<usize>, reason: String| LoadError {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut file =
        std::fs::File::open(path).map_err(|e| error(None, format!("cannot open: {e}")))?;
    // `buf[..filled]`: what was read and not parsed yet, from the start of a line.
    let mut buf = vec![0u8; chunk.max(1)];
    let (mut filled, mut number) = (0, 0);
    loop {
        if filled == buf.len() {
            // A line longer than the buffer.
            buf.resize(2 * buf.len(), 0);
        }
        let n = match file.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(error(None, format!("cannot read: {e}"))),
        };
        let end_of_file = n == 0;
        filled += n;
        // The lines read whole: up to the last newline, or all at the end of the file.
        let whole = match buf[..filled].iter().rposition(|&b| b == b'\n') {
            _ if end_of_file => filled,
            Some(last) => last + 1,
            None => continue,
        };
        // Valid UTF-8 up to the first line that is not (a newline is never inside a character).
        let (text, bad) = match std::str::from_utf8(&buf[..whole]) {
            Ok(text) => (text, false),
            Err(e) => (
                std::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or_default(),
                true,
            ),
        };
        let mut at = 0;
        while at < text.len() {
            let rest = &text.as_bytes()[at..];
            if let Some((e, used)) = usual_line(rest, end_of_file && !bad) {
                number += 1;
                entry(e);
                at += used;
                continue;
            }
            let end = match rest.iter().position(|&b| b == b'\n') {
                Some(newline) => at + newline + 1,
                // The start of the line that is not UTF-8.
                None if bad => break,
                None => text.len(),
            };
            // From a line's start to after its newline (or the end): character boundaries.
            let line = &text[at..end];
            at = end;
            number += 1;
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
        if bad {
            return Err(error(Some(number + 1), "not UTF-8 text".into()));
        }
        if end_of_file {
            return Ok(());
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
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

    /// The parsers this module had before its byte-level one, on `std`'s address and integer
    /// parsers: what the byte-level parser must accept and refuse, with the same reasons.
    mod reference {
        use super::super::*;
        use std::io::BufRead;

        pub fn prefix(text: &str) -> Result<Prefix, String> {
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

        pub fn line(line: &str) -> Result<Option<Entry>, String> {
            let content = line.split_once('#').map_or(line, |(before, _)| before);
            let mut fields = content.split_ascii_whitespace();
            let Some(network) = fields.next() else {
                return Ok(None);
            };
            let prefix = prefix(network)?;
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

        /// Line by line through a `BufReader`, as the file was read before.
        pub fn read(path: &Path) -> (Vec<Entry>, Result<(), LoadError>) {
            let mut entries = Vec::new();
            let error = |line: Option<usize>, reason: String| LoadError {
                path: path.to_path_buf(),
                line,
                reason,
            };
            let file = std::fs::File::open(path).unwrap();
            let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
            let mut buf = Vec::new();
            let mut number = 0;
            loop {
                buf.clear();
                if reader.read_until(b'\n', &mut buf).unwrap() == 0 {
                    return (entries, Ok(()));
                }
                number += 1;
                let Ok(text) = std::str::from_utf8(&buf) else {
                    return (entries, Err(error(Some(number), "not UTF-8 text".into())));
                };
                match self::line(text) {
                    Ok(Some(e)) => entries.push(e),
                    Ok(None) => {}
                    Err(reason) => {
                        let text = text.trim();
                        let quoted: String = text.chars().take(QUOTED).collect();
                        let ellipsis = if quoted.len() < text.len() { "..." } else { "" };
                        return (
                            entries,
                            Err(error(
                                Some(number),
                                format!("{reason} (line: \"{quoted}{ellipsis}\")"),
                            )),
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn addresses_in_the_corners_of_std_s_grammar() {
        for text in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:1.2.3.4",
            "::1.2.3.4",
            "::ffff:1.2.3.4",
            "1::1.2.3.4",
            "0000:0:0::0",
            "FFFF::",
            "1:2:3:4:5:6:7:8::",
            "1:2:3:4:5:6:7::8",
            ":::",
            "1:::2",
            "::1:",
            ":1::2",
            "1::2::3",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:1.2.3.4",
            "1.2.3.4::",
            "1:2:3:4:5:6::1.2.3.4",
            "::1.2.3.4:5",
            "::00000",
            "::12345",
            "::g",
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.0",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0004",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3.4",
            "1.2.3.4.",
            "+1.2.3.4",
            "::1.2.3.4567",
            "::1.2.3.256",
            "::01.2.3.4",
            "1.2.3.4/+8",
            "1.2.3.4/008",
            "1.2.3.4/-0",
            "1.2.3.4/+",
            "1.2.3.4/",
            "1.2.3.4/256",
            "0.0.0.0/0/0",
            "::/+0",
            "::/0128",
            "::/129",
            "1.2.3.4%1",
            "[::1]",
            "::ffff:0:0/96",
            "::ffff:1.2.3.0/120",
            "é::1",
        ] {
            assert_eq!(Prefix::parse(text), reference::prefix(text), "{text:?}");
        }
    }

    #[test]
    fn scores_in_the_corners_of_std_s_grammar() {
        for score in [
            "0",
            "100",
            "101",
            "+5",
            "-0",
            "007",
            "-1",
            "+",
            "-",
            "--1",
            "+-1",
            "5.5",
            "1e2",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "00000000000000000000000000100",
            "٣",
        ] {
            let line = format!("10.0.0.0/8 {score}");
            assert_eq!(parse_line(&line), reference::line(&line), "{line:?}");
        }
    }

    mod property {
        use super::*;
        use proptest::prelude::*;

        /// An IPv4 part: mostly 0..=255, sometimes more, sometimes with leading zeros.
        fn v4_part() -> impl Strategy<Value = String> {
            (prop_oneof![0u16..=255, 0u16..=1100], 0usize..3, 0u8..10).prop_map(
                |(v, zeros, pick)| match pick {
                    0 => format!("{}{v}", "0".repeat(zeros + 1)),
                    _ => v.to_string(),
                },
            )
        }

        fn v4_text() -> impl Strategy<Value = String> {
            (proptest::collection::vec(v4_part(), 3..=5), 0u8..12).prop_map(|(parts, pick)| {
                let n = if pick == 0 { parts.len() } else { 4 };
                parts[..n.min(parts.len())].join(".")
            })
        }

        /// IPv6 text of `groups`: a run of them replaced by `::` (zero or not), leading zeros,
        /// capitals, the last two as an IPv4 address; many of them valid, many just not.
        fn v6_spelling(
            groups: [u16; 8],
            (gap_at, gap_len): (usize, usize),
            (pad, upper): (bool, bool),
            dotted: Option<String>,
        ) -> String {
            let mut parts: Vec<String> = groups
                .iter()
                .map(|g| {
                    let hex = if pad {
                        format!("{g:04x}")
                    } else {
                        format!("{g:x}")
                    };
                    if upper {
                        hex.to_uppercase()
                    } else {
                        hex
                    }
                })
                .collect();
            if let Some(v4) = dotted {
                parts.truncate(6);
                parts.push(v4);
            }
            let at = gap_at.min(parts.len());
            if gap_len > 0 {
                let end = (at + gap_len - 1).min(parts.len());
                format!("{}::{}", parts[..at].join(":"), parts[end..].join(":"))
            } else {
                parts.join(":")
            }
        }

        fn v6_text() -> impl Strategy<Value = String> {
            (
                proptest::array::uniform8(prop_oneof![Just(0u16), Just(0xffff), any::<u16>()]),
                (0usize..9, 0usize..10),
                (any::<bool>(), any::<bool>()),
                proptest::option::weighted(0.2, v4_text()),
            )
                .prop_map(|(groups, gap, style, dotted)| v6_spelling(groups, gap, style, dotted))
        }

        /// A network written as it should be (host bits clear, the zero groups of an IPv6 one
        /// as `::`, sometimes), or text near one.
        fn prefix_text() -> impl Strategy<Value = String> {
            let len = prop_oneof![
                (0u16..=140).prop_map(|n| n.to_string()),
                (0u16..=140).prop_map(|n| format!("+{n}")),
                (0u16..=140).prop_map(|n| format!("00{n}")),
                proptest::sample::select(vec!["", "+", "-0", "1/2", "x", "300", "٣"])
                    .prop_map(String::from),
            ];
            let near = (
                prop_oneof![v4_text(), v6_text()],
                proptest::option::weighted(0.8, len),
            )
                .prop_map(|(addr, len)| match len {
                    Some(len) => format!("{addr}/{len}"),
                    None => addr,
                });
            let v4 = (any::<u32>(), 0u8..=32, any::<bool>()).prop_map(|(bits, len, plain)| {
                let addr = Ipv4Addr::from(bits & mask32(len));
                match plain && len == 32 {
                    true => addr.to_string(),
                    false => format!("{addr}/{len}"),
                }
            });
            let v6 = (
                any::<u128>(),
                0u8..=128,
                (0usize..9, 0usize..4),
                (any::<bool>(), any::<bool>()),
                0u8..4,
            )
                .prop_map(|(bits, len, gap, style, pick)| {
                    let bits = bits & mask128(len);
                    let addr = match pick {
                        0 => Ipv6Addr::from(bits).to_string(),
                        1 => v6_spelling(
                            Ipv6Addr::from(bits).segments(),
                            gap,
                            style,
                            Some(Ipv4Addr::from(bits as u32).to_string()),
                        ),
                        _ => v6_spelling(Ipv6Addr::from(bits).segments(), gap, style, None),
                    };
                    format!("{addr}/{len}")
                });
            prop_oneof![2 => v4, 2 => v6, 3 => near]
        }

        fn score_text() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => (0i64..=110).prop_map(|n| n.to_string()),
                1 => any::<i64>().prop_map(|n| n.to_string()),
                1 => proptest::sample::select(vec![
                    "-0", "+7", "007", "-1", "99999999999999999999", "5.5", "x", "+", "-",
                ])
                .prop_map(String::from),
            ]
        }

        /// Whitespace that separates fields, and some that does not.
        fn gap() -> impl Strategy<Value = String> {
            let odd = proptest::collection::vec(
                proptest::sample::select(vec![" ", "\t", "\r", "\x0c", "\x0b", "\u{a0}"]),
                1..3,
            )
            .prop_map(|v| v.concat());
            prop_oneof![6 => Just(" ".to_string()), 2 => Just("\t ".to_string()), 2 => odd]
        }

        /// A line: mostly `CIDR SCORE` in its many spellings, sometimes without the score or
        /// with more, with comments, then edited at random (a character in, out, or changed).
        fn line() -> impl Strategy<Value = String> {
            let fields = (
                prop_oneof![gap(), Just(String::new())],
                prefix_text(),
                proptest::option::weighted(0.9, (gap(), score_text())),
                proptest::option::weighted(0.1, (gap(), score_text())),
                proptest::option::weighted(0.2, "[ #a-z]{0,8}"),
            )
                .prop_map(|(lead, prefix, score, extra, comment)| {
                    let mut line = lead + &prefix;
                    for (gap, field) in [score, extra].into_iter().flatten() {
                        line = line + &gap + &field;
                    }
                    if let Some(c) = comment {
                        line = line + "#" + &c;
                    }
                    line
                });
            let edit = proptest::option::weighted(
                0.15,
                (
                    any::<proptest::sample::Index>(),
                    0u8..3,
                    proptest::sample::select(
                        ":./+-#0123456789abfAF \t\rxé\u{a0}"
                            .chars()
                            .collect::<Vec<_>>(),
                    ),
                ),
            );
            (fields, edit).prop_map(|(line, edit)| {
                let Some((at, kind, c)) = edit else {
                    return line;
                };
                let mut chars: Vec<char> = line.chars().collect();
                let at = at.index(chars.len() + 1);
                match kind {
                    0 => chars.insert(at, c),
                    1 if at < chars.len() => {
                        chars.remove(at);
                    }
                    _ if at < chars.len() => chars[at] = c,
                    _ => chars.push(c),
                }
                chars.into_iter().collect()
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            #[test]
            fn lines_parse_as_std_s_parsers_parse_them(line in line()) {
                prop_assert_eq!(parse_line(&line), reference::line(&line), "{:?}", line);
            }

            /// The one-pass reading of usual lines gives what the general one does, or leaves
            /// the line to it; it reads the usual line to its newline, or to the end of the
            /// file's text where the file ends without one.
            #[test]
            fn usual_lines_read_in_one_pass_as_in_general(line in line(), crlf in any::<bool>()) {
                let want = reference::line(&line);
                let ended = format!("{line}{}\nnext", if crlf { "\r" } else { "" });
                if let Some((entry, used)) = usual_line(ended.as_bytes(), false) {
                    prop_assert_eq!(Ok(Some(entry)), want.clone(), "{:?}", line);
                    prop_assert_eq!(used, ended.len() - "next".len());
                }
                if let Some((entry, used)) = usual_line(line.as_bytes(), true) {
                    prop_assert_eq!(Ok(Some(entry)), want.clone(), "{:?}", line);
                    prop_assert_eq!(used, line.len());
                }
                prop_assert_eq!(usual_line(line.as_bytes(), false), None);
                let usual = match line.split(' ').collect::<Vec<_>>()[..] {
                    [network, score] => {
                        let (addr, len) = network.split_once('/').unwrap_or((network, "1"));
                        addr.chars().all(|c| c.is_ascii_hexdigit() || ":.".contains(c))
                            && (1..=3).contains(&len.len())
                            && len.chars().all(|c| c.is_ascii_digit())
                            && (1..=3).contains(&score.len())
                            && score.chars().all(|c| c.is_ascii_digit())
                    }
                    _ => false,
                };
                if usual && want.as_ref().is_ok_and(|e| e.is_some()) {
                    // The usual spelling: read in one pass.
                    prop_assert!(usual_line(ended.as_bytes(), false).is_some(), "{:?}", line);
                }
            }

            #[test]
            fn any_text_parses_as_std_s_parsers_parse_it(
                text in "[0-9a-fA-F:./+# \t]{0,24}",
            ) {
                prop_assert_eq!(Prefix::parse(&text), reference::prefix(&text), "{:?}", text);
                prop_assert_eq!(parse_line(&text), reference::line(&text), "{:?}", text);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Files read in chunks of any size give the entries and the error that reading
            /// them line by line gives: lines across chunk boundaries, longer than a chunk,
            /// without a final newline, with CRLF, not UTF-8.
            #[test]
            fn files_read_in_chunks_as_line_by_line(
                lines in proptest::collection::vec(
                    (line(), 0u8..40).prop_map(|(l, pick)| match pick {
                        0 => l.into_bytes().into_iter().chain([0xff]).collect::<Vec<u8>>(),
                        1 => Vec::new(),
                        2 => format!("# {}", "x".repeat(200)).into_bytes(),
                        _ => l.into_bytes(),
                    }),
                    0..40,
                ),
                crlf in any::<bool>(),
                last_newline in any::<bool>(),
                chunk in 1usize..80,
            ) {
                let dir = std::env::temp_dir()
                    .join(format!("spoa-scores-chunks-{}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join("scores.txt");
                let newline: &[u8] = if crlf { b"\r\n" } else { b"\n" };
                let mut text = lines.join(newline);
                if last_newline {
                    text.extend_from_slice(newline);
                }
                std::fs::write(&path, &text).unwrap();
                let mut entries = Vec::new();
                let result = read_chunks(&path, chunk, |e| entries.push(e));
                prop_assert_eq!((entries, result), reference::read(&path));
            }
        }
    }
}
