//! The data arena: a per-channel area for bulk buffers.
//!
//! The guest side allocates blocks with an [`ArenaAllocator`] kept in its own
//! process memory (so its bookkeeping cannot be corrupted through the shared
//! mapping), fills them, and sends `(offset, len)` pairs in its commands. The
//! worker side never trusts such a pair: [`Arena::check`] bounds it before
//! any access.

use std::collections::BTreeMap;

use crate::ArenaError;
use crate::shm::Shm;

/// Alignment of every arena block (a cache line, so DMA-friendly and so that
/// two buffers never share a line).
pub const ARENA_ALIGN: u64 = 64;

/// A channel's data arena, as seen by either side.
#[derive(Debug, Clone)]
pub struct Arena {
    pub(crate) shm: Shm,
    pub(crate) base: usize,
    pub(crate) size: u64,
}

impl Arena {
    pub(crate) fn new(shm: Shm, base: usize, size: usize) -> Arena {
        Arena {
            shm,
            base,
            size: size as u64,
        }
    }

    /// Size of the arena in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Validates an untrusted `(offset, len)` pair.
    pub fn check(&self, offset: u64, len: u64) -> Result<(), ArenaError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(ArenaError::OutOfBounds {
                offset,
                len,
                size: self.size,
            }),
        }
    }

    /// Copies `src` into the arena at `offset`.
    pub fn write(&self, offset: u64, src: &[u8]) -> Result<(), ArenaError> {
        self.check(offset, src.len() as u64)?;
        self.shm.write(self.base + offset as usize, src);
        Ok(())
    }

    /// Copies `dst.len()` bytes out of the arena from `offset`.
    pub fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), ArenaError> {
        self.check(offset, dst.len() as u64)?;
        self.shm.read(self.base + offset as usize, dst);
        Ok(())
    }

    /// A raw pointer to a validated range, for handing arena pages straight to
    /// a device or a syscall without a copy. The bytes may change underneath
    /// the pointer (the guest owns them); whoever dereferences it must treat
    /// them as untrusted.
    pub fn ptr(&self, offset: u64, len: u64) -> Result<*mut u8, ArenaError> {
        self.check(offset, len)?;
        Ok(self.shm.ptr(self.base + offset as usize, len as usize))
    }
}

/// A block handed out by an [`ArenaAllocator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArenaBlock {
    /// Offset inside the arena.
    pub offset: u64,
    /// Length in bytes (as asked for; the reservation is rounded up).
    pub len: u64,
}

/// First-fit allocator over an arena, with coalescing of free neighbours.
/// Lives in the guest's private memory.
#[derive(Debug, Clone)]
pub struct ArenaAllocator {
    /// Free ranges: offset → length, never adjacent (always coalesced).
    free: BTreeMap<u64, u64>,
    size: u64,
    in_use: u64,
}

fn reserved(len: u64) -> u64 {
    len.max(1).div_ceil(ARENA_ALIGN) * ARENA_ALIGN
}

impl ArenaAllocator {
    /// An allocator for an arena of `size` bytes, all free.
    pub fn new(size: u64) -> ArenaAllocator {
        let size = size / ARENA_ALIGN * ARENA_ALIGN;
        let mut free = BTreeMap::new();
        if size > 0 {
            free.insert(0, size);
        }
        ArenaAllocator {
            free,
            size,
            in_use: 0,
        }
    }

    /// Bytes currently reserved.
    pub fn in_use(&self) -> u64 {
        self.in_use
    }

    /// Total bytes managed.
    pub fn capacity(&self) -> u64 {
        self.size
    }

    /// Reserves `len` bytes, or `None` when no free range is large enough.
    pub fn alloc(&mut self, len: u64) -> Option<ArenaBlock> {
        let need = reserved(len);
        let (&offset, &flen) = self.free.iter().find(|&(_, &l)| l >= need)?;
        self.free.remove(&offset);
        if flen > need {
            self.free.insert(offset + need, flen - need);
        }
        self.in_use += need;
        Some(ArenaBlock { offset, len })
    }

    /// Returns a block. Freeing a block twice, or one never allocated, is a bug
    /// of the caller and panics in debug builds.
    pub fn free(&mut self, block: ArenaBlock) {
        let mut offset = block.offset;
        let mut len = reserved(block.len);
        debug_assert!(offset + len <= self.size);
        debug_assert!(
            self.free
                .range(..=offset)
                .next_back()
                .is_none_or(|(&o, &l)| o + l <= offset),
            "double free of arena block {block:?}"
        );
        self.in_use -= len;
        if let Some((&prev, &plen)) = self.free.range(..offset).next_back()
            && prev + plen == offset
        {
            self.free.remove(&prev);
            offset = prev;
            len += plen;
        }
        if let Some(&nlen) = self.free.get(&(offset + len)) {
            self.free.remove(&(offset + len));
            len += nlen;
        }
        self.free.insert(offset, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn alloc_free_coalesces() {
        let mut a = ArenaAllocator::new(1024);
        let x = a.alloc(100).unwrap();
        let y = a.alloc(64).unwrap();
        let z = a.alloc(1).unwrap();
        assert_eq!((x.offset, y.offset, z.offset), (0, 128, 192));
        assert!(a.alloc(1024).is_none());
        a.free(y);
        a.free(x);
        a.free(z);
        assert_eq!(a.in_use(), 0);
        assert_eq!(a.alloc(1024).unwrap().offset, 0);
    }

    #[test]
    fn worker_side_checks_bounds() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let shm = Shm::map(file.path(), Some(8192)).unwrap();
        let arena = Arena::new(shm, 4096, 4096);
        assert!(arena.write(4000, &[1; 96]).is_ok());
        assert!(arena.write(4001, &[1; 96]).is_err());
        assert!(arena.check(u64::MAX, 2).is_err());
        let mut buf = [0u8; 96];
        arena.read(4000, &mut buf).unwrap();
        assert_eq!(buf, [1; 96]);
    }

    proptest! {
        #[test]
        fn blocks_never_overlap(ops in prop::collection::vec((0u64..3000, any::<bool>()), 1..200)) {
            let mut a = ArenaAllocator::new(16 * 1024);
            let mut live: Vec<ArenaBlock> = Vec::new();
            for (len, free) in ops {
                if free && !live.is_empty() {
                    let b = live.swap_remove(len as usize % live.len());
                    a.free(b);
                } else if let Some(b) = a.alloc(len) {
                    prop_assert_eq!(b.offset % ARENA_ALIGN, 0);
                    prop_assert!(b.offset + b.len <= a.capacity());
                    for o in &live {
                        prop_assert!(b.offset + reserved(b.len) <= o.offset || o.offset + reserved(o.len) <= b.offset);
                    }
                    live.push(b);
                }
            }
            for b in live.drain(..) { a.free(b); }
            prop_assert_eq!(a.in_use(), 0);
            prop_assert_eq!(a.alloc(16 * 1024).map(|b| b.offset), Some(0));
        }
    }
}
