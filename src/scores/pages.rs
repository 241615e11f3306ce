//! Read-only arrays of the score table, large ones on huge pages.
//!
//! A lookup in a million-prefix table reads three or four cache lines spread over some 30 MiB.
//! With 4 KiB pages each read is also a TLB miss, and on a virtual machine the page walk it
//! starts reads memory of its own (guest and host tables): on the build machine a random read
//! through 12 MiB took 120 to 150 ns with 4 KiB pages and 80 to 127 ns with 2 MiB ones. So an
//! array of [`HUGE_MIN`] or more lives in an anonymous map advised `MADV_HUGEPAGE` (transparent
//! huge pages in `madvise` mode, the common default), aligned on 2 MiB so that every 2 MiB of it
//! can be one page; its last part, under 2 MiB, is on base pages so that the memory held is not
//! rounded up. Smaller arrays stay on the heap. An array whose largest size is known before it
//! is built is written straight into its map ([`Filling`]); others are copied there once built
//! ([`Pages::new`]).
//!
//! Where huge pages are unavailable (no transparent huge pages in the kernel, the advice
//! refused, the map refused) the array keeps working on 4 KiB pages or on the heap: the table
//! says which in [`Backing`], and the reload log line shows it. `memmap2` maps and advises,
//! `bytemuck` views the bytes as `T` (plain data, checked alignment); the one `unsafe` gives
//! back the huge page a filled array's tail was first written on ([`Filling::seal`]).

use std::sync::atomic::{AtomicUsize, Ordering};

use bytemuck::Pod;
use memmap2::{Advice, MmapMut, MmapOptions, UncheckedAdvice};

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
        let (start, advised) = align_and_advise(&map, huge);
        let backing = backing(advised, thp);
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

/// An array written in place, then sealed as [`Pages`]: built in the map it is read from, not
/// on the heap and copied, so that its memory is zeroed once (by the kernel) and held once.
///
/// The map reserves address space for the largest the array can become (a bound the caller
/// knows, often twice the size it ends at); only the pages written take memory. Its whole huge
/// pages are advised huge from the start; the last part, under 2 MiB, is moved to base pages when
/// the array is sealed ([`Filling::seal`]), as [`Pages::new`] places it. An array that ends under
/// the threshold is copied to the heap then, and one whose bound is under it is built there.
#[derive(Debug)]
pub struct Filling<T: Pod> {
    storage: Filled<T>,
    threshold: usize,
}

#[derive(Debug)]
enum Filled<T> {
    Heap(Vec<T>),
    /// The array is `map[start..]`, `len` items of at most `capacity`; `counted` bytes of the map
    /// are in [`MAPPED`] (the huge pages the array has reached).
    Mapped {
        map: MmapMut,
        start: usize,
        len: usize,
        capacity: usize,
        counted: usize,
        /// Whether the kernel took the advice to put the whole huge pages `capacity` items
        /// fill on huge pages.
        advised: Result<(), String>,
    },
}

impl<T: Pod> Filling<T> {
    /// An empty array that will hold at most `capacity` items, in a map if they can take
    /// `threshold` bytes or more.
    pub fn new(capacity: usize, threshold: usize) -> Self {
        let bytes = capacity.saturating_mul(std::mem::size_of::<T>());
        let heap = |capacity| Filling {
            storage: Filled::Heap(Vec::with_capacity(capacity)),
            threshold,
        };
        if bytes == 0 || bytes < threshold {
            return heap(capacity);
        }
        // Reserved, not committed: the pages never written are never backed.
        let Ok(map) = MmapOptions::new()
            .len(bytes + HUGE_PAGE)
            .no_reserve_swap()
            .map_anon()
        else {
            log::warn!("scores: no memory map of {bytes} bytes, table array built on the heap");
            return heap(0);
        };
        let (start, advised) = align_and_advise(&map, split(bytes).0);
        Filling {
            storage: Filled::Mapped {
                map,
                start,
                len: 0,
                capacity,
                counted: 0,
                advised,
            },
            threshold,
        }
    }

    /// The items so far.
    pub fn as_slice(&self) -> &[T] {
        match &self.storage {
            Filled::Heap(v) => v,
            Filled::Mapped {
                map, start, len, ..
            } => bytemuck::cast_slice(&map[*start..*start + len * std::mem::size_of::<T>()]),
        }
    }

    /// Items so far.
    pub fn len(&self) -> usize {
        match &self.storage {
            Filled::Heap(v) => v.len(),
            Filled::Mapped { len, .. } => *len,
        }
    }

    /// Appends `item`; past the capacity given to [`Filling::new`], panics (a caller's bug).
    #[inline]
    pub fn push(&mut self, item: T) {
        match &mut self.storage {
            Filled::Heap(v) => v.push(item),
            Filled::Mapped {
                map,
                start,
                len,
                capacity,
                counted,
                ..
            } => {
                assert!(*len < *capacity, "a table array grew past its bound");
                let size = std::mem::size_of::<T>();
                let at = *start + *len * size;
                map[at..at + size].copy_from_slice(bytemuck::bytes_of(&item));
                *len += 1;
                // The huge pages reached so far count as held (for the benchmark's peak).
                if *len * size > *counted {
                    let reached = (*len * size).next_multiple_of(HUGE_PAGE);
                    MAPPED.fetch_add(reached - *counted, Ordering::Relaxed);
                    *counted = reached;
                }
            }
        }
    }

    /// The last item.
    #[inline]
    pub fn last(&self) -> Option<T> {
        self.as_slice().last().copied()
    }

    /// Removes the last item.
    pub fn pop(&mut self) -> Option<T> {
        let last = self.last()?;
        match &mut self.storage {
            Filled::Heap(v) => v.truncate(v.len() - 1),
            Filled::Mapped { len, .. } => *len -= 1,
        }
        Some(last)
    }

    /// The array, read-only from now on, where [`Pages::new`] would place it.
    pub fn seal(self) -> Pages<T> {
        let (mut map, start, len, capacity, counted, advised) = match self.storage {
            Filled::Heap(items) => return Pages::placed(items, usize::MAX, None),
            Filled::Mapped {
                map,
                start,
                len,
                capacity,
                counted,
                advised,
            } => (map, start, len, capacity, counted, advised),
        };
        MAPPED.fetch_sub(counted, Ordering::Relaxed);
        let bytes = len * std::mem::size_of::<T>();
        if bytes == 0 || bytes < self.threshold {
            let items = bytemuck::cast_slice(&map[start..start + bytes]).to_vec();
            return Pages::placed(items, usize::MAX, None);
        }
        let backing = backing(advised, thp_mode());
        let (huge, tail) = split(bytes);
        let advised_huge = split(capacity.saturating_mul(std::mem::size_of::<T>())).0;
        if tail > 0 && backing == Backing::Huge && huge + HUGE_PAGE <= advised_huge {
            // The last huge page the array reached is only partly used: that part is copied
            // out, the page given back, and the part written again on base pages.
            let part = map[start + huge..start + bytes].to_vec();
            let _ = map.advise_range(Advice::NoHugePage, start + huge, map.len() - start - huge);
            // SAFETY: the range is inside this map, which nothing else refers to (no slice of
            // it is alive: `self` was taken by value), and the map is anonymous and private,
            // so the advice only makes the range read as zeros again, overwritten below.
            let freed = unsafe {
                map.unchecked_advise_range(UncheckedAdvice::DontNeed, start + huge, HUGE_PAGE)
            };
            match freed {
                Ok(()) => map[start + huge..start + bytes].copy_from_slice(&part),
                // Left as it was: the array reads the same, from one more huge page.
                Err(e) => log::debug!("scores: a table array's last huge page kept: {e}"),
            }
        }
        MAPPED.fetch_add(huge + tail, Ordering::Relaxed);
        Pages {
            storage: Storage::Mapped {
                map,
                start,
                end: start + bytes,
            },
            backing,
        }
    }
}

/// Where in `map` (a huge page larger than the array) an array of `huge` bytes of whole huge
/// pages, then a tail, starts: on a 2 MiB boundary. Those `huge` bytes are advised huge (the
/// reason if the kernel refused); the rest of the map is advised not to be, where the kernel
/// would give huge pages unasked (mode `always`), which it refuses only where there are none.
fn align_and_advise(map: &MmapMut, huge: usize) -> (usize, Result<(), String>) {
    let start = (map.as_ptr() as usize).next_multiple_of(HUGE_PAGE) - map.as_ptr() as usize;
    let advised = match huge {
        0 => Ok(()),
        _ => map
            .advise_range(Advice::HugePage, start, huge)
            .map_err(|e| format!("huge page advice refused: {e}")),
    };
    let _ = map.advise_range(Advice::NoHugePage, start + huge, map.len() - start - huge);
    (start, advised)
}

/// Where a mapped array is, given how the huge page advice went (the reason it was refused)
/// and the transparent huge page mode `thp` (`None`: unknown).
fn backing(advised: Result<(), String>, thp: Option<String>) -> Backing {
    match (advised, thp) {
        (Err(why), _) => Backing::Small(why),
        (Ok(()), Some(mode)) if mode == "never" => Backing::Small(format!(
            "transparent huge pages are off ({THP_MODE}: never)"
        )),
        (Ok(()), _) => Backing::Huge,
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

    /// 300,000 items (4.6 MiB) read back, and placed on two huge pages and a tail on base
    /// pages where the kernel gives huge pages, on base pages only where it does not.
    fn assert_on_two_huge_pages_and_a_tail(pages: &Pages<u128>, items: &[u128]) {
        assert_eq!(pages.as_slice(), items);
        let at = pages.as_slice().as_ptr() as usize;
        assert_eq!(at % HUGE_PAGE, 0, "aligned on a huge page");
        assert_eq!(pages.mem_size(), (300_000 * 16usize).next_multiple_of(4096));
        match thp_mode().as_deref() {
            Some("always" | "madvise") => {
                assert_eq!(pages.backing(), &Backing::Huge);
                assert_eq!(pages.huge_size(), 2 * HUGE_PAGE);
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

    #[test]
    fn large_arrays_are_on_huge_pages_where_the_kernel_gives_them() {
        let items = numbers(300_000);
        assert_on_two_huge_pages_and_a_tail(&Pages::new(items.clone()), &items);
    }

    fn filled(items: &[u128], capacity: usize, threshold: usize) -> Pages<u128> {
        let mut filling = Filling::new(capacity, threshold);
        for &item in items {
            filling.push(item);
        }
        assert_eq!(filling.as_slice(), items);
        filling.seal()
    }

    /// The tail, first written on a third huge page, ends on base pages.
    #[test]
    fn an_array_filled_in_its_map_ends_on_huge_pages_and_its_tail_on_base_pages() {
        let items = numbers(300_000);
        let bound = 2_000_000; // 32 MiB
        assert_on_two_huge_pages_and_a_tail(&filled(&items, bound, HUGE_MIN), &items);
    }

    #[test]
    fn arrays_filled_under_the_threshold_end_on_the_heap() {
        let items = numbers(1000);
        let small_bound = filled(&items, 1000, HUGE_MIN);
        let large_bound = filled(&items, 1_000_000, HUGE_MIN);
        for pages in [small_bound, large_bound] {
            assert_eq!(pages.backing(), &Backing::Heap);
            assert_eq!(pages.as_slice(), &items[..]);
            assert_eq!(pages.mem_size(), 1000 * 16);
        }
        let empty = filled(&[], 1_000_000, 0);
        assert_eq!(
            (empty.backing(), empty.as_slice()),
            (&Backing::Heap, &[][..])
        );
    }

    #[test]
    fn a_filling_array_gives_back_its_last_items() {
        for threshold in [0, usize::MAX] {
            let mut filling = Filling::new(10, threshold);
            assert_eq!((filling.last(), filling.pop()), (None, None));
            for i in 1..=3u32 {
                filling.push(i);
            }
            assert_eq!(
                (filling.last(), filling.pop(), filling.len()),
                (Some(3), Some(3), 2)
            );
            filling.push(7);
            assert_eq!(filling.seal().as_slice(), &[1, 2, 7]);
        }
    }
}
