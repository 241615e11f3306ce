//! Read-only arrays of the score table, large ones on huge pages.
//!
//! A lookup in a million-prefix table reads three or four cache lines spread over some 30 MiB.
//! With 4 KiB pages each read is also a TLB miss, and on a virtual machine the page walk it
//! starts reads memory of its own (guest and host tables): on the build machine a random read
//! through 12 MiB took 120 to 150 ns with 4 KiB pages and 80 to 127 ns with 2 MiB ones. So an
//! array of [`HUGE_MIN`] or more is copied, once built, into an anonymous map advised
//! `MADV_HUGEPAGE` (transparent huge pages in `madvise` mode, the common default), aligned on
//! 2 MiB so that every 2 MiB of it can be one page; its last part, under 2 MiB, stays on base
//! pages so that the memory held is not rounded up. Smaller arrays stay on the heap.
//!
//! Where huge pages are unavailable (no transparent huge pages in the kernel, the advice
//! refused, the map refused) the array keeps working on 4 KiB pages or on the heap: the table
//! says which in [`Backing`], and the reload log line shows it. No `unsafe` here: `memmap2`
//! maps and advises, `bytemuck` views the bytes as `T` (plain data, checked alignment).

use std::sync::atomic::{AtomicUsize, Ordering};

use bytemuck::Pod;
use memmap2::{Advice, MmapMut};

/// Bytes held in maps by every [`Pages`] of the process (their [`Pages::mem_size`]).
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Bytes the score tables of this process hold in memory maps, outside the heap: what a
/// counting allocator does not see (the `scores` benchmark adds it to the heap's).
pub fn mapped_bytes() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

/// The size of a huge page on x86-64 and aarch64 (4 KiB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// The base page size assumed for memory accounting.
const BASE_PAGE: usize = 4 << 10;

/// Arrays from this size go to a map: smaller ones fill no huge page.
pub const HUGE_MIN: usize = HUGE_PAGE;

/// The kernel's transparent huge page mode: `always`, `madvise` (huge pages where advised),
/// `never`.
const THP_MODE: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// The selected word of [`THP_MODE`] (`[madvise]` in `always [madvise] never`), if readable.
fn thp_mode() -> Option<String> {
    let modes = std::fs::read_to_string(THP_MODE).ok()?;
    let selected = modes.split_whitespace().find(|m| m.starts_with('['))?;
    Some(selected.trim_matches(['[', ']']).to_string())
}

/// Where an array's memory is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// On the heap (small, or no map could be made).
    Heap,
    /// In a map advised to use huge pages.
    Huge,
    /// In a map on base pages: the kernel refused the huge page advice (the reason).
    Small(String),
}

/// A read-only array of `T`, on the heap or in a map.
#[derive(Debug)]
pub struct Pages<T: Pod> {
    storage: Storage<T>,
    backing: Backing,
}

#[derive(Debug)]
enum Storage<T> {
    Heap(Vec<T>),
    /// The array is `map[start..end]`, `start` a multiple of [`HUGE_PAGE`] from the map's
    /// first byte's address.
    /// Never written after it is filled: [`Pages`] lends it out shared only.
    Mapped {
        map: MmapMut,
        start: usize,
        end: usize,
    },
}

impl<T: Pod> Drop for Pages<T> {
    fn drop(&mut self) {
        if let Storage::Mapped { .. } = self.storage {
            MAPPED.fetch_sub(self.mem_size(), Ordering::Relaxed);
        }
    }
}

impl<T: Pod> Default for Pages<T> {
    fn default() -> Self {
        Pages {
            storage: Storage::Heap(Vec::new()),
            backing: Backing::Heap,
        }
    }
}

impl<T: Pod> Pages<T> {
    /// `items`, moved into huge pages if there are at least [`HUGE_MIN`] bytes of them.
    pub fn new(items: Vec<T>) -> Self {
        Self::with_threshold(items, HUGE_MIN)
    }

    /// `items`, moved into a map (huge pages if the kernel agrees) if there are at least
    /// `threshold` bytes of them, else kept on the heap as they are. A map that cannot be made
    /// leaves them on the heap too.
    pub fn with_threshold(items: Vec<T>, threshold: usize) -> Self {
        Self::placed(items, threshold, thp_mode())
    }

    /// [`Pages::with_threshold`] under the transparent huge page mode `thp` (`None`: unknown).
    fn placed(mut items: Vec<T>, threshold: usize, thp: Option<String>) -> Self {
        let bytes: &[u8] = bytemuck::cast_slice(&items);
        let len = bytes.len();
        if len == 0 || len < threshold {
            items.shrink_to_fit();
            return Pages {
                storage: Storage::Heap(items),
                backing: Backing::Heap,
            };
        }
        // The whole huge pages the array fills are advised huge; its tail (under 2 MiB) stays
        // on base pages, so that the memory held is the array's size, not rounded up to 2 MiB
        // (a lookup lands in the tail as often as the tail is large: a few percent).
        let (huge, tail) = split(len);
        // One huge page more than needed, so that a 2 MiB boundary falls in its first one: the
        // pages before it and after the array are never touched, so they take address space,
        // not memory.
        let Ok(mut map) = MmapMut::map_anon(huge + tail + HUGE_PAGE) else {
            log::warn!("scores: no memory map of {len} bytes, table array kept on the heap");
            items.shrink_to_fit();
            return Pages {
                storage: Storage::Heap(items),
                backing: Backing::Heap,
            };
        };
        let start = (map.as_ptr() as usize).next_multiple_of(HUGE_PAGE) - map.as_ptr() as usize;
        let advised = match huge {
            0 => Ok(()),
            _ => map.advise_range(Advice::HugePage, start, huge),
        };
        // Where the kernel would give huge pages unasked (mode `always`), not to the tail
        // either. Refused only where there are no huge pages at all.
        let _ = map.advise_range(Advice::NoHugePage, start + huge, map.len() - start - huge);
        let backing = match (advised, thp) {
            (Err(e), _) => Backing::Small(format!("huge page advice refused: {e}")),
            (Ok(()), Some(mode)) if mode == "never" => Backing::Small(format!(
                "transparent huge pages are off ({THP_MODE}: never)"
            )),
            (Ok(()), _) => Backing::Huge,
        };
        MAPPED.fetch_add(huge + tail, Ordering::Relaxed);
        map[start..start + len].copy_from_slice(bytes);
        Pages {
            storage: Storage::Mapped {
                map,
                start,
                end: start + len,
            },
            backing,
        }
    }

    /// The items.
    #[inline(always)]
    pub fn as_slice(&self) -> &[T] {
        match &self.storage {
            Storage::Heap(v) => v,
            Storage::Mapped { map, start, end } => bytemuck::cast_slice(&map[*start..*end]),
        }
    }

    /// Memory held: the heap capacity, or the pages the array spans (what the kernel gives it
    /// once touched).
    pub fn mem_size(&self) -> usize {
        match &self.storage {
            Storage::Heap(v) => {
                std::mem::size_of_val(v.as_slice())
                    + (v.capacity() - v.len()) * std::mem::size_of::<T>()
            }
            Storage::Mapped { start, end, .. } => {
                let (huge, tail) = split(end - start);
                huge + tail
            }
        }
    }

    /// Where the items are.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// Of [`Pages::mem_size`], the bytes on huge pages (if the kernel gave them).
    pub fn huge_size(&self) -> usize {
        match (&self.storage, &self.backing) {
            (Storage::Mapped { start, end, .. }, Backing::Huge) => split(end - start).0,
            _ => 0,
        }
    }
}

/// `len` bytes as the whole huge pages they fill and the rest, rounded up to base pages.
fn split(len: usize) -> (usize, usize) {
    let huge = len / HUGE_PAGE * HUGE_PAGE;
    (huge, (len - huge).next_multiple_of(BASE_PAGE))
}

/// Memory a table holds, by where it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// On the heap.
    pub heap: usize,
    /// In maps on huge pages.
    pub huge: usize,
    /// In maps on base pages.
    pub small: usize,
    /// Why the kernel gave base pages instead of huge ones, if it did.
    pub refused: Option<String>,
}

impl Memory {
    /// Counts `pages` in.
    pub fn add<T: Pod>(&mut self, pages: &Pages<T>) {
        let bytes = pages.mem_size();
        match pages.backing() {
            Backing::Heap => self.heap += bytes,
            Backing::Huge => {
                self.huge += pages.huge_size();
                self.small += bytes - pages.huge_size();
            }
            Backing::Small(why) => {
                self.small += bytes;
                self.refused.get_or_insert_with(|| why.clone());
            }
        }
    }

    /// Bytes held in all.
    pub fn total(&self) -> usize {
        self.heap + self.huge + self.small
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(n: u128) -> Vec<u128> {
        (0..n)
            .map(|i| i.wrapping_mul(0x0123_4567_89ab_cdef_0011_2233_4455_6677))
            .collect()
    }

    /// The `AnonHugePages` of the mapping holding `addr`, from `/proc/self/smaps`, in kB.
    fn huge_kb_at(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        inside = (lo..hi).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(kb) = line.strip_prefix("AnonHugePages:") {
                    return kb.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
        None
    }

    #[test]
    fn a_mapped_array_reads_as_the_vec_it_came_from() {
        let items = numbers(100_000);
        let mapped = Pages::with_threshold(items.clone(), 0);
        assert!(matches!(
            mapped.backing(),
            Backing::Huge | Backing::Small(_)
        ));
        assert_eq!(mapped.as_slice(), &items[..]);
        let heap = Pages::with_threshold(items.clone(), usize::MAX);
        assert_eq!(heap.backing(), &Backing::Heap);
        assert_eq!(heap.as_slice(), mapped.as_slice());
    }

    #[test]
    fn small_and_empty_arrays_stay_on_the_heap() {
        let small = Pages::new(numbers(10));
        assert_eq!(small.backing(), &Backing::Heap);
        assert_eq!(small.mem_size(), 10 * 16);
        let empty = Pages::<u32>::with_threshold(Vec::new(), 0);
        assert_eq!(
            (empty.backing(), empty.as_slice()),
            (&Backing::Heap, &[][..])
        );
    }

    #[test]
    fn huge_pages_off_leaves_the_array_on_base_pages_and_says_why() {
        let items = numbers(200_000);
        let pages = Pages::placed(items.clone(), 0, Some("never".into()));
        let Backing::Small(why) = pages.backing() else {
            panic!("expected base pages, got {:?}", pages.backing());
        };
        assert!(why.contains("never"), "{why}");
        assert_eq!(pages.as_slice(), &items[..]);
        assert_eq!(pages.mem_size(), (200_000 * 16usize).next_multiple_of(4096));
        let mut memory = Memory::default();
        memory.add(&pages);
        assert_eq!(
            (memory.small, memory.refused.as_deref()),
            (pages.mem_size(), Some(why.as_str()))
        );
    }

    #[test]
    fn large_arrays_are_on_huge_pages_where_the_kernel_gives_them() {
        let items = numbers(300_000); // 4.6 MiB: two huge pages and a tail on base pages
        let pages = Pages::new(items.clone());
        assert_eq!(pages.as_slice(), &items[..]);
        let at = pages.as_slice().as_ptr() as usize;
        assert_eq!(at % HUGE_PAGE, 0, "aligned on a huge page");
        match thp_mode().as_deref() {
            Some("always" | "madvise") => {
                assert_eq!(pages.backing(), &Backing::Huge);
                assert_eq!(pages.huge_size(), 2 * HUGE_PAGE);
                assert_eq!(pages.mem_size(), (300_000 * 16usize).next_multiple_of(4096));
                // The kernel may fall back to base pages when it has no free huge page (memory
                // fragmented); on a machine with memory to spare it gives them.
                let kb = huge_kb_at(at).expect("the mapping in /proc/self/smaps");
                assert_eq!(kb, 4096, "kB on huge pages");
            }
            mode => assert!(
                matches!(pages.backing(), Backing::Small(_)),
                "THP mode {mode:?}: {:?}",
                pages.backing()
            ),
        }
    }
}
