//! The worker's management of a region's buffer heap.
//!
//! The heap is shared memory that the worker hands to the device library as
//! the storage of buffers (OpenCL's `CL_MEM_USE_HOST_PTR`), so that a guest
//! can read and write a buffer in place, with one copy, once the worker has
//! told it that no device command is using it. Only the worker allocates:
//! the bookkeeping lives here, in the worker's own memory, where a guest
//! cannot reach it. A guest can scribble over the heap's bytes, but those
//! are only ever its own buffers' contents.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use transport::{Arena, ArenaAllocator, ArenaBlock, HeapView};

/// Alignment of every buffer placed in the heap (a page: what device
/// libraries ask of host pointers they use in place).
pub const HEAP_ALIGN: u64 = 4096;

/// A buffer whose storage lies in the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Where its storage starts, from the start of the heap.
    pub offset: u64,
    /// The buffer's size in bytes.
    pub len: u64,
    /// What the backend needs to tell whether an access is valid (for
    /// OpenCL, the buffer's context).
    pub tag: u64,
}

#[derive(Debug)]
struct State {
    alloc: ArenaAllocator,
    /// Host object → its placement.
    objects: HashMap<u64, (Placement, ArenaBlock)>,
}

/// Shared virtual memory: the heap's second view (at one address in the
/// worker and in every guest process) and the allocations made in it.
#[derive(Debug, Default)]
struct Svm {
    /// The view, once asked for (or why it could not be made).
    view: Option<Result<HeapView, String>>,
    /// Start address → (block, length asked for, tag).
    allocs: BTreeMap<usize, (ArenaBlock, u64, u64)>,
    /// Tags whose end the backend watches ([`Heap::svm_watch`]).
    watched: std::collections::HashSet<u64>,
}

/// A region's buffer heap: its memory and the worker's allocator for it.
/// Shared by every channel of the region.
#[derive(Debug)]
pub struct Heap {
    mem: Arena,
    state: Mutex<State>,
    svm: Mutex<Svm>,
}

impl Heap {
    /// Manages `mem` (a region's heap), all of it free.
    pub fn new(mem: Arena) -> Heap {
        Heap {
            state: Mutex::new(State {
                alloc: ArenaAllocator::new(mem.size()),
                objects: HashMap::new(),
            }),
            mem,
            svm: Mutex::new(Svm::default()),
        }
    }

    fn svm(&self) -> std::sync::MutexGuard<'_, Svm> {
        self.svm.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Allocates `len` bytes of shared virtual memory aligned to `align`
    /// (a power of two, at most [`HEAP_ALIGN`]; 0 for the default) for
    /// the object `tag` (for OpenCL, the context): the address of the
    /// heap's second view (the same in every process that maps it there)
    /// and the allocation's offset in the heap. The view is made on first
    /// use, at one of [`transport::SVM_HINTS`].
    pub fn svm_alloc(&self, len: u64, align: u64, tag: u64) -> Result<(usize, u64), String> {
        if align > HEAP_ALIGN || (align != 0 && !align.is_power_of_two()) {
            return Err(format!(
                "alignment {align}: shared virtual memory is aligned to at most {HEAP_ALIGN} bytes"
            ));
        }
        let mut svm = self.svm();
        if svm.view.is_none() {
            let made = self
                .mem
                .map_at_one_of(&transport::SVM_HINTS)
                .map_err(|e| e.to_string());
            if let Ok(v) = &made {
                tracing::debug!(
                    base = format_args!("{:#x}", v.base()),
                    "the heap's SVM view"
                );
            }
            svm.view = Some(made);
        }
        let base = match svm.view.as_ref() {
            Some(Ok(v)) => v.base(),
            Some(Err(e)) => return Err(e.clone()),
            None => unreachable!("made above"),
        };
        let (block, _) = self
            .reserve(len)
            .ok_or_else(|| format!("the heap has no room for {len} bytes"))?;
        svm.allocs
            .insert(base + block.offset as usize, (block, len, tag));
        Ok((base, block.offset))
    }

    /// Frees the allocation that starts at `addr` (made for `tag`): its
    /// length, or `None` when there was none.
    pub fn svm_free(&self, addr: usize, tag: u64) -> Option<u64> {
        let mut svm = self.svm();
        match svm.allocs.get(&addr) {
            Some((_, _, t)) if *t == tag => {}
            _ => return None,
        }
        let (block, len, _) = svm.allocs.remove(&addr)?;
        drop(svm);
        self.unreserve(block);
        Some(len)
    }

    /// Whether the backend should start watching for the end of `tag`
    /// (true once, until [`Heap::svm_free_all`] ends it).
    pub fn svm_watch(&self, tag: u64) -> bool {
        self.svm().watched.insert(tag)
    }

    /// Frees every allocation made for `tag` (its context is gone): how
    /// many there were and their bytes.
    pub fn svm_free_all(&self, tag: u64) -> (usize, u64) {
        let mut svm = self.svm();
        svm.watched.remove(&tag);
        let mut freed: Vec<(ArenaBlock, u64)> = Vec::new();
        svm.allocs.retain(|_, &mut (block, len, t)| {
            if t == tag {
                freed.push((block, len));
            }
            t != tag
        });
        drop(svm);
        for (b, _) in &freed {
            self.unreserve(*b);
        }
        (freed.len(), freed.iter().map(|(_, len)| len).sum())
    }

    /// The allocation that holds `[addr, addr + len)` (with `len` 0: `addr`
    /// inside it or just past its end): its start and tag.
    pub fn svm_find(&self, addr: usize, len: usize) -> Option<(usize, u64)> {
        let svm = self.svm();
        let (&start, &(_, size, tag)) = svm.allocs.range(..=addr).next_back()?;
        let end = start.checked_add(size as usize)?;
        let last = addr.checked_add(len)?;
        (last <= end).then_some((start, tag))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The heap's size in bytes.
    pub fn size(&self) -> u64 {
        self.mem.size()
    }

    /// Bytes reserved by live buffers.
    pub fn in_use(&self) -> u64 {
        self.state().alloc.in_use()
    }

    /// Reserves page-aligned storage for `len` bytes: the block and a
    /// pointer to it, or `None` when the heap has no room (the caller then
    /// uses the device's own memory).
    pub fn reserve(&self, len: u64) -> Option<(ArenaBlock, *mut u8)> {
        if len == 0 {
            return None;
        }
        let rounded = len.checked_next_multiple_of(HEAP_ALIGN)?;
        let block = self.state().alloc.alloc(rounded)?;
        debug_assert_eq!((block.offset % HEAP_ALIGN, block.len), (0, rounded));
        match self.mem.ptr(block.offset, rounded) {
            Ok(p) => Some((block, p)),
            Err(_) => {
                self.state().alloc.free(block);
                None
            }
        }
    }

    /// Gives back storage that no object came to use.
    pub fn unreserve(&self, block: ArenaBlock) {
        self.state().alloc.free(block);
    }

    /// Records that host object `object` (`len` bytes) lives in `block`.
    pub fn attach(&self, object: u64, block: ArenaBlock, len: u64, tag: u64) {
        let p = Placement {
            offset: block.offset,
            len,
            tag,
        };
        let mut s = self.state();
        if let Some((_, old)) = s.objects.insert(object, (p, block)) {
            // A host address reused before its destructor ran: keep the
            // allocator exact.
            s.alloc.free(old);
        }
    }

    /// Where `object` lives, if in the heap.
    pub fn placement(&self, object: u64) -> Option<Placement> {
        self.state().objects.get(&object).map(|(p, _)| *p)
    }

    /// Frees `object`'s storage (its destructor ran).
    pub fn detach(&self, object: u64) {
        let mut s = self.state();
        if let Some((_, block)) = s.objects.remove(&object) {
            s.alloc.free(block);
        }
    }

    /// Copies `src` into the heap at `offset` (bounds-checked).
    pub fn write(&self, offset: u64, src: &[u8]) -> Result<(), transport::ArenaError> {
        self.mem.write(offset, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(size: u64) -> (tempfile::TempDir, Heap) {
        let dir = tempfile::tempdir().unwrap();
        let region = transport::Region::create(
            &dir.path().join("r"),
            &transport::RegionConfig {
                channels: 1,
                cmd_ring_size: 4096,
                resp_ring_size: 4096,
                arena_size: 4096,
                heap_size: size,
            },
        )
        .unwrap();
        let h = Heap::new(region.heap());
        (dir, h)
    }

    #[test]
    #[cfg_attr(miri, ignore = "maps the region's file")]
    fn svm_allocations_live_in_the_heaps_second_view_until_freed() {
        let (_d, h) = heap(16 * HEAP_ALIGN);
        let (base, off) = h.svm_alloc(100, 64, 7).unwrap();
        assert!(transport::SVM_HINTS.contains(&base));
        let a = base + off as usize;
        assert_eq!(h.svm_find(a, 100), Some((a, 7)));
        assert_eq!(h.svm_find(a + 50, 0), Some((a, 7)));
        assert_eq!(h.svm_find(a + 100, 0), Some((a, 7)), "one past the end");
        assert_eq!(h.svm_find(a + 50, 51), None, "past the end");
        assert_eq!(h.svm_find(a - 1, 1), None);
        // The bytes are the heap's: written in the view, read in the heap.
        // SAFETY: inside the allocation, which is live.
        unsafe { *(a as *mut u8) = 42 };
        let mut b = [0u8];
        h.mem.read(off, &mut b).unwrap();
        assert_eq!(b[0], 42);
        assert!(h.svm_alloc(1, 8192, 7).is_err(), "alignment above a page");
        assert!(
            h.svm_alloc(1, 3, 7).is_err(),
            "alignment not a power of two"
        );
        assert_eq!(h.svm_free(a, 8), None, "another context's");
        assert_eq!(h.svm_free(a, 7), Some(100));
        assert_eq!(h.svm_free(a, 7), None, "freed twice");
        assert_eq!(h.svm_find(a, 1), None);
        let (_, o1) = h.svm_alloc(10, 0, 9).unwrap();
        let (_, o2) = h.svm_alloc(10, 0, 9).unwrap();
        assert_ne!(o1, o2);
        assert_eq!(h.svm_free_all(9), (2, 20));
        assert_eq!(h.in_use(), 0);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "page alignment is a mapping's (Miri's stand-in memory is 8-aligned)"
    )]
    fn placements_are_page_aligned_and_freed_by_detach() {
        let (_d, h) = heap(16 * HEAP_ALIGN);
        let (a, pa) = h.reserve(100).unwrap();
        let (b, pb) = h.reserve(HEAP_ALIGN + 1).unwrap();
        assert_eq!(a.offset % HEAP_ALIGN, 0);
        assert_eq!(b.offset % HEAP_ALIGN, 0);
        assert_eq!(pa as usize % HEAP_ALIGN as usize, 0);
        assert_eq!(pb as usize - pa as usize, HEAP_ALIGN as usize);
        h.attach(1, a, 100, 7);
        h.attach(2, b, HEAP_ALIGN + 1, 7);
        assert_eq!(
            h.placement(2),
            Some(Placement {
                offset: HEAP_ALIGN,
                len: HEAP_ALIGN + 1,
                tag: 7
            })
        );
        assert_eq!(h.in_use(), 3 * HEAP_ALIGN);
        h.detach(1);
        h.detach(2);
        h.detach(2);
        assert_eq!(h.in_use(), 0);
        assert_eq!(h.placement(1), None);
    }

    #[test]
    fn a_full_or_empty_heap_says_no() {
        let (_d, h) = heap(2 * HEAP_ALIGN);
        assert!(h.reserve(0).is_none());
        assert!(h.reserve(3 * HEAP_ALIGN).is_none());
        let (a, _) = h.reserve(2 * HEAP_ALIGN).unwrap();
        assert!(h.reserve(1).is_none());
        h.unreserve(a);
        assert!(h.reserve(1).is_some());
        let (_d2, none) = heap(0);
        assert!(none.reserve(1).is_none());
    }

    /// Bytes the heap reserves for a buffer of `len` bytes.
    fn pages(len: u64) -> u64 {
        len.next_multiple_of(HEAP_ALIGN)
    }

    #[test]
    fn holes_left_by_freed_blocks_take_only_what_fits() {
        const PAGES: u64 = 32;
        let (_d, h) = heap(PAGES * HEAP_ALIGN);
        let blocks: Vec<ArenaBlock> = (0..PAGES)
            .map(|i| {
                let (b, _) = h.reserve(HEAP_ALIGN).unwrap();
                assert_eq!(b.offset, i * HEAP_ALIGN);
                b
            })
            .collect();
        assert!(h.reserve(1).is_none(), "full");
        assert_eq!(h.in_use(), PAGES * HEAP_ALIGN);
        // Every other page freed: half the heap is free, in one-page holes.
        let (kept, holes): (Vec<ArenaBlock>, Vec<ArenaBlock>) = blocks
            .into_iter()
            .partition(|b| (b.offset / HEAP_ALIGN).is_multiple_of(2));
        for b in &holes {
            h.unreserve(*b);
        }
        assert_eq!(h.in_use(), PAGES / 2 * HEAP_ALIGN);
        // Nothing larger than a page fits, and asking changes nothing.
        for len in [HEAP_ALIGN + 1, 2 * HEAP_ALIGN, PAGES / 2 * HEAP_ALIGN] {
            assert!(h.reserve(len).is_none(), "{len} bytes in one-page holes");
        }
        assert_eq!(h.in_use(), PAGES / 2 * HEAP_ALIGN);
        // What fits a page fills the holes, lowest first, until none is left.
        let sizes = [1, 100, HEAP_ALIGN - 1, HEAP_ALIGN];
        let mut live: Vec<(u64, ArenaBlock)> = kept.iter().map(|b| (HEAP_ALIGN, *b)).collect();
        for (i, hole) in holes.iter().enumerate() {
            let len = sizes[i % sizes.len()];
            let (b, _) = h.reserve(len).unwrap();
            assert_eq!(b.offset, hole.offset);
            live.push((len, b));
            assert_eq!(
                h.in_use(),
                live.iter().map(|(len, _)| pages(*len)).sum::<u64>()
            );
        }
        assert!(h.reserve(1).is_none(), "the holes are filled");
        // Every third refill attached to an object: the same accounting.
        let attached: std::collections::HashMap<u64, u64> = live[kept.len()..]
            .iter()
            .step_by(3)
            .enumerate()
            .map(|(id, (len, b))| {
                h.attach(id as u64, *b, *len, 0);
                (b.offset, id as u64)
            })
            .collect();
        assert_eq!(h.in_use(), PAGES * HEAP_ALIGN);
        let free = |b: &ArenaBlock| match attached.get(&b.offset) {
            Some(id) => h.detach(*id),
            None => h.unreserve(*b),
        };
        // Pages 6 (kept), 7 (refilled and attached) and 8 (kept) freed make
        // one free range of three pages: a three-page buffer fits there,
        // and nothing larger fits anywhere.
        assert_eq!(attached.get(&(7 * HEAP_ALIGN)), Some(&1));
        let three = 6 * HEAP_ALIGN..9 * HEAP_ALIGN;
        for (_, b) in live.iter().filter(|(_, b)| three.contains(&b.offset)) {
            free(b);
        }
        assert_eq!(h.in_use(), (PAGES - 3) * HEAP_ALIGN);
        assert!(h.reserve(3 * HEAP_ALIGN + 1).is_none());
        let (b, _) = h.reserve(3 * HEAP_ALIGN).unwrap();
        assert_eq!(b.offset, 6 * HEAP_ALIGN);
        assert!(h.reserve(1).is_none());
        h.unreserve(b);
        // Everything freed: the heap is one free range again.
        for (_, b) in live.iter().filter(|(_, b)| !three.contains(&b.offset)) {
            free(b);
        }
        assert_eq!(h.in_use(), 0);
        let (all, _) = h.reserve(PAGES * HEAP_ALIGN).unwrap();
        assert_eq!(all.offset, 0);
    }

    #[test]
    fn attaching_an_object_again_frees_its_previous_block() {
        let (_d, h) = heap(8 * HEAP_ALIGN);
        let (old, _) = h.reserve(HEAP_ALIGN).unwrap();
        h.attach(9, old, 100, 1);
        let (new, _) = h.reserve(2 * HEAP_ALIGN + 5).unwrap();
        assert_eq!(h.in_use(), 4 * HEAP_ALIGN);
        // The same host object again (an address the driver reused before
        // the old buffer's destructor ran): the new placement replaces the
        // old one, whose block goes back to the heap instead of leaking.
        h.attach(9, new, 2 * HEAP_ALIGN + 5, 2);
        assert_eq!(
            h.placement(9),
            Some(Placement {
                offset: new.offset,
                len: 2 * HEAP_ALIGN + 5,
                tag: 2
            })
        );
        assert_eq!(h.in_use(), 3 * HEAP_ALIGN);
        let (again, _) = h.reserve(HEAP_ALIGN).unwrap();
        assert_eq!(again.offset, old.offset, "the old block is free");
        h.unreserve(again);
        // One entry per object: detaching it frees the current block, once.
        h.detach(9);
        assert_eq!(h.in_use(), 0);
        assert_eq!(h.placement(9), None);
        h.detach(9);
        assert_eq!(h.in_use(), 0);
        assert!(h.reserve(8 * HEAP_ALIGN).is_some(), "nothing leaked");
    }

    /// One step of [`in_use_is_the_sum_of_live_reservations`].
    #[derive(Debug, Clone)]
    enum Op {
        /// Reserve this many bytes (kept unattached).
        Reserve(u64),
        /// Give back the n-th unattached reservation.
        Unreserve(usize),
        /// Attach the n-th unattached reservation to object `id`
        /// (replacing what `id` had).
        Attach(usize, u64),
        /// Detach object `id`.
        Detach(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (1u64..6 * HEAP_ALIGN).prop_map(Op::Reserve),
            any::<usize>().prop_map(Op::Unreserve),
            (any::<usize>(), 0u64..6).prop_map(|(n, id)| Op::Attach(n, id)),
            (0u64..6).prop_map(Op::Detach),
        ]
    }

    proptest::proptest! {
        /// Whatever the order of reservations, attachments (replacing
        /// ones included) and frees: `in_use` is the sum of the live
        /// blocks, rounded to pages; live blocks never overlap; and once
        /// everything is freed the whole heap is one free range again.
        #[test]
        fn in_use_is_the_sum_of_live_reservations(ops in proptest::collection::vec(op(), 1..120)) {
            const SIZE: u64 = 24 * HEAP_ALIGN;
            let (_d, h) = heap(SIZE);
            let mut unattached: Vec<ArenaBlock> = Vec::new();
            let mut objects: std::collections::HashMap<u64, ArenaBlock> = Default::default();
            for op in ops {
                match op {
                    Op::Reserve(len) => {
                        if let Some((b, _)) = h.reserve(len) {
                            unattached.push(b);
                        }
                    }
                    Op::Unreserve(n) if !unattached.is_empty() => {
                        h.unreserve(unattached.swap_remove(n % unattached.len()));
                    }
                    Op::Attach(n, id) if !unattached.is_empty() => {
                        let b = unattached.swap_remove(n % unattached.len());
                        h.attach(id, b, b.len, id);
                        objects.insert(id, b);
                    }
                    Op::Detach(id) => {
                        h.detach(id);
                        objects.remove(&id);
                    }
                    _ => {}
                }
                let live: Vec<ArenaBlock> =
                    unattached.iter().chain(objects.values()).copied().collect();
                proptest::prop_assert_eq!(
                    h.in_use(),
                    live.iter().map(|b| pages(b.len)).sum::<u64>()
                );
                let mut spans: Vec<(u64, u64)> =
                    live.iter().map(|b| (b.offset, b.offset + pages(b.len))).collect();
                spans.sort_unstable();
                for w in spans.windows(2) {
                    proptest::prop_assert!(w[0].1 <= w[1].0, "overlap: {:?}", spans);
                }
                for (id, b) in &objects {
                    proptest::prop_assert_eq!(h.placement(*id).map(|p| p.offset), Some(b.offset));
                }
            }
            for b in unattached {
                h.unreserve(b);
            }
            for id in objects.keys() {
                h.detach(*id);
            }
            proptest::prop_assert_eq!(h.in_use(), 0);
            proptest::prop_assert!(h.reserve(SIZE).is_some());
        }
    }
}
