//! The `spoa` agent's own code as a library, so that the binary, the benchmarks (`benches/`) and
//! the tests (`tests/`) use the very same handler and score tables: the IP-reputation handler
//! ([`reputation`]), the score tables from CIDR lists ([`scores`]) and their live reload
//! ([`reload`]).

pub mod reload;
pub mod reputation;
pub mod scores;
