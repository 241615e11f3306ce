//! Synthetic score tables for the benchmarks and the reload measurements: reproducible from a
//! seed, shaped like real block lists (mostly single addresses and small networks, a few wide
//! ones that overlap them), IPv4 and IPv6 mixed.
//!
//! - IPv4 (60 % of the entries): 75 % /32, 20 % /24, 4.9 % /16../23, 0.1 % /9../15, anywhere in
//!   the address space.
//! - IPv6 (40 %): inside 4,096 random /24 regions of 2000::/3 (as real lists cluster in the
//!   providers' allocations), 40 % /128, 30 % /64, 20 % /48, 9.9 % /32../47, 0.1 % /25../31.
//!
//! Random addresses then mostly miss (the wide IPv4 networks cover a few percent of the space),
//! and [`hits`] picks addresses inside entries.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::file::{Entry, Prefix, MAX_SCORE};

const V6_REGIONS: usize = 4096;

/// `count` entries from `seed`, in random order (families interleaved).
pub fn entries(count: usize, seed: u64) -> Vec<Entry> {
    let mut rng = oorandom::Rand64::new(u128::from(seed));
    let regions: Vec<u128> = (0..V6_REGIONS)
        .map(|_| (0x2000u128 << 112) | (u128::from(rng.rand_u64() & 0x1f_ffff) << 104))
        .collect();
    (0..count)
        .map(|_| {
            let pick = rng.rand_range(0..1000);
            let prefix = if rng.rand_range(0..10) < 6 {
                let len = match pick {
                    0..=749 => 32,
                    750..=949 => 24,
                    950..=998 => 16 + rng.rand_range(0..8) as u8,
                    _ => 9 + rng.rand_range(0..7) as u8,
                };
                Prefix::V4 {
                    bits: rng.rand_u64() as u32,
                    len,
                }
                .network()
            } else {
                let len = match pick {
                    0..=399 => 128,
                    400..=699 => 64,
                    700..=899 => 48,
                    900..=998 => 32 + rng.rand_range(0..16) as u8,
                    _ => 25 + rng.rand_range(0..7) as u8,
                };
                let region = regions[rng.rand_range(0..V6_REGIONS as u64) as usize];
                let low = (u128::from(rng.rand_u64()) << 64) | u128::from(rng.rand_u64());
                Prefix::V6 {
                    bits: region | (low >> 24),
                    len,
                }
                .network()
            };
            Entry {
                prefix,
                score: rng.rand_range(0..u64::from(MAX_SCORE) + 1) as u8,
            }
        })
        .collect()
}

/// `count` addresses, each inside a random entry of `entries` (at a random offset in it).
pub fn hits(entries: &[Entry], count: usize, seed: u64) -> Vec<IpAddr> {
    let mut rng = oorandom::Rand64::new(u128::from(seed));
    (0..count)
        .map(|_| {
            let e = entries[rng.rand_range(0..entries.len() as u64) as usize];
            let noise = (u128::from(rng.rand_u64()) << 64) | u128::from(rng.rand_u64());
            match e.prefix {
                Prefix::V4 { bits, len } => {
                    let host = (noise as u32).checked_shr(u32::from(len)).unwrap_or(0);
                    IpAddr::V4(Ipv4Addr::from(bits | host))
                }
                Prefix::V6 { bits, len } => {
                    let host = noise.checked_shr(u32::from(len)).unwrap_or(0);
                    IpAddr::V6(Ipv6Addr::from(bits | host))
                }
            }
        })
        .collect()
}

/// `count` uniformly random addresses, 60 % IPv4, IPv6 in 2000::/3 (no IPv4-mapped ones).
pub fn addresses(count: usize, seed: u64) -> Vec<IpAddr> {
    let mut rng = oorandom::Rand64::new(u128::from(seed));
    (0..count)
        .map(|_| {
            if rng.rand_range(0..10) < 6 {
                IpAddr::V4(Ipv4Addr::from(rng.rand_u64() as u32))
            } else {
                let bits = (u128::from(rng.rand_u64()) << 64) | u128::from(rng.rand_u64());
                IpAddr::V6(Ipv6Addr::from((0x2000u128 << 112) | (bits >> 3)))
            }
        })
        .collect()
}

/// Writes `entries` as a score file, with a header comment.
pub fn write(path: &Path, entries: &[Entry], seed: u64) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "# synthetic score table: {} entries, seed {seed}",
        entries.len()
    )?;
    for e in entries {
        writeln!(out, "{e}")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_mixed_and_inside() {
        let a = entries(2000, 7);
        assert_eq!(a, entries(2000, 7));
        assert_ne!(a, entries(2000, 8));
        let v4 = a
            .iter()
            .filter(|e| matches!(e.prefix, Prefix::V4 { .. }))
            .count();
        assert!((1000..1400).contains(&v4), "{v4} IPv4 of 2000");
        assert!(a.iter().all(|e| e.prefix == e.prefix.network()));
        for addr in hits(&a, 500, 1) {
            assert!(a.iter().any(|e| e.prefix.contains(addr)), "{addr}");
        }
    }
}
