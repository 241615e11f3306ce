//! Scores from CIDR lists (`--scores FILE`): the file format ([`file`]), the longest-prefix-match
//! table built from the files ([`Table`]), and synthetic tables for the benchmarks
//! ([`synthetic`]).

pub mod file;
mod pages;
mod ranges;
pub mod synthetic;
mod table;

pub use file::{Entry, LoadError, Prefix, MAX_SCORE};
pub use pages::{mapped_bytes, Memory};
pub use table::{FileSummary, Table};
