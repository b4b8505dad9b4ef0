//! The worker's management of a region's buffer heap.
//!
//! The heap is shared memory that the worker hands to the device library as
//! the storage of buffers (OpenCL's `CL_MEM_USE_HOST_PTR`), so that a guest
//! can read and write a buffer in place, with one copy, once the worker has
//! told it that no device command is using it. Only the worker allocates:
//! the bookkeeping lives here, in the worker's own memory, where a guest
//! cannot reach it. A guest can scribble over the heap's bytes, but those
//! are only ever its own buffers' contents.

use std::collections::HashMap;
use std::sync::Mutex;

use transport::{Arena, ArenaAllocator, ArenaBlock};

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

/// A region's buffer heap: its memory and the worker's allocator for it.
/// Shared by every channel of the region.
#[derive(Debug)]
pub struct Heap {
    mem: Arena,
    state: Mutex<State>,
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
        }
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
                heap_size: size,
                ..Default::default()
            },
        )
        .unwrap();
        let h = Heap::new(region.heap());
        (dir, h)
    }

    #[test]
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
}
