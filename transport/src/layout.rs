//! The region's binary layout, shared by both sides and versioned.
//!
//! ```text
//! offset 0      RegionHeader (static fields, written once when formatting)
//! offset 128    worker heartbeat (u64, own cache-line pair)
//! offset 256    worker owner pid (u64)
//! offset 4096   channel 0: control page, command ring, response ring, arena
//!               channel 1 …                  (each `channel_stride` bytes)
//! heap_offset   the buffer heap (`heap_size` bytes, may be empty)
//! ```
//!
//! The heap holds the storage of device buffers that the worker places in
//! shared memory (see `docs/transport.md`): the guest reads and writes them
//! in place, with one copy, once the worker has said that no command of the
//! device is using them. Only the worker allocates in it, from bookkeeping
//! kept in its own memory.
//!
//! Each channel's control page holds, 128 bytes apart so that no two writers
//! share a cache line (or an adjacent-line prefetch pair):
//! the channel state word (generation << 32 | state), the owner pid, the
//! guest heartbeat, then the command ring's head and tail and the response
//! ring's head and tail, the two rings' bells, and whether the guest rings.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// First eight bytes of every region.
pub const MAGIC: [u8; 8] = *b"AVA-SHM\0";
/// The layout version this build writes and accepts (2 added the buffer
/// heap, 3 the doorbells).
pub const VERSION: u32 = 3;
/// Page size that every area is aligned to.
pub const PAGE: u64 = 4096;
/// Largest data arena of a channel (1 TiB): with at most 4096 channels,
/// 4 GiB rings and a heap of at most 2^48 bytes, every offset of a valid
/// layout fits in 64 bits.
pub const MAX_ARENA: u64 = 1 << 40;
/// Spacing between independently written atomics.
pub const LINE: usize = 128;

/// Offset of the worker heartbeat counter.
pub const WORKER_HEARTBEAT: usize = 128;
/// Offset of the pid of the worker that serves the region (0: none).
pub const WORKER_PID: usize = 256;
/// Offset of the identity of the worker's kernel (a hash of its boot id;
/// 0: unknown): a guest of the same kernel can wake the worker with a
/// futex (see `bell`).
pub const WORKER_KERNEL: usize = 384;
/// Offset of the region's bell (a u32): the worker's region thread sleeps
/// on it when nothing changes; a guest of its kernel rings it after
/// claiming a channel (see `bell`).
pub const REGION_BELL: usize = 512;
/// Offset of the worker's ivshmem peer id plus one (u64; 0: the worker
/// takes no doorbells): a guest in a VM whose `ivshmem-doorbell` device is
/// served by the worker rings it there (see `doorbell`).
pub const WORKER_DOORBELL: usize = 640;

/// Channel-relative offset of the state word.
pub const CH_STATE: usize = 0;
/// Channel-relative offset of the owner's pid (informational).
pub const CH_OWNER_PID: usize = 8;
/// Channel-relative offset of the guest heartbeat counter.
pub const CH_HEARTBEAT: usize = LINE;
/// Channel-relative offset of the command ring's head (guest writes).
pub const CH_CMD_HEAD: usize = 2 * LINE;
/// Channel-relative offset of the command ring's tail (worker writes).
pub const CH_CMD_TAIL: usize = 3 * LINE;
/// Channel-relative offset of the response ring's head (worker writes).
pub const CH_RESP_HEAD: usize = 4 * LINE;
/// Channel-relative offset of the response ring's tail (guest writes).
pub const CH_RESP_TAIL: usize = 5 * LINE;
/// Channel-relative offset of the command ring's bell (the worker sleeps on
/// it; the guest rings it).
pub const CH_CMD_BELL: usize = 6 * LINE;
/// Channel-relative offset of the response ring's bell (the guest sleeps on
/// it; the worker rings it).
pub const CH_RESP_BELL: usize = 7 * LINE;
/// Channel-relative offset of the word in which the guest says that it
/// rings the command ring's bell (0: it does not; 1: with a futex wake, as
/// it shares the worker's kernel; 2: through its VM's ivshmem doorbell).
pub const CH_GUEST_RINGS: usize = 8 * LINE;
/// Size of a channel's control page.
pub const CH_CONTROL: u64 = PAGE;

/// The static part of the region header, read with one copy and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RegionHeader {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: u32,
    /// Size of this struct, for forward compatibility.
    pub header_size: u32,
    /// Bytes the layout needs; the mapping may be larger (BARs are powers of two).
    pub total_size: u64,
    /// Number of channels.
    pub channel_count: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Offset of channel 0.
    pub channel_offset: u64,
    /// Distance between consecutive channels.
    pub channel_stride: u64,
    /// Data bytes of each command ring (a power of two).
    pub cmd_ring_size: u64,
    /// Data bytes of each response ring (a power of two).
    pub resp_ring_size: u64,
    /// Bytes of each channel's data arena (a multiple of [`PAGE`]).
    pub arena_size: u64,
    /// Offset of the buffer heap (right after the last channel).
    pub heap_offset: u64,
    /// Bytes of the buffer heap (a multiple of [`PAGE`]; 0: no heap).
    pub heap_size: u64,
}

/// Geometry of one channel, derived from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLayout {
    /// Offset of the channel's control page.
    pub base: usize,
    /// Offset of the command ring's data.
    pub cmd_data: usize,
    /// Size of the command ring's data.
    pub cmd_size: usize,
    /// Offset of the response ring's data.
    pub resp_data: usize,
    /// Size of the response ring's data.
    pub resp_size: usize,
    /// Offset of the data arena.
    pub arena: usize,
    /// Size of the data arena.
    pub arena_size: usize,
}

impl RegionHeader {
    /// The header for a configuration, with every derived size filled in.
    pub fn for_config(
        channels: u32,
        cmd_ring_size: u64,
        resp_ring_size: u64,
        arena_size: u64,
        heap_size: u64,
    ) -> RegionHeader {
        // Saturating: sizes too large to add up give a header whose total
        // no mapping holds, which `validate` refuses, instead of a panic or
        // a wrapped offset.
        let stride = CH_CONTROL
            .saturating_add(cmd_ring_size)
            .saturating_add(resp_ring_size)
            .saturating_add(arena_size);
        let stride = stride.div_ceil(PAGE).saturating_mul(PAGE);
        let heap_offset = stride
            .saturating_mul(u64::from(channels))
            .saturating_add(PAGE);
        RegionHeader {
            magic: MAGIC,
            version: VERSION,
            header_size: size_of::<RegionHeader>() as u32,
            total_size: heap_offset.saturating_add(heap_size),
            channel_count: channels,
            reserved: 0,
            channel_offset: PAGE,
            channel_stride: stride,
            cmd_ring_size,
            resp_ring_size,
            arena_size,
            heap_offset,
            heap_size,
        }
    }

    /// Checks every size against the others and against the mapping length;
    /// returns a reason in words when something is off.
    pub fn validate(&self, map_len: u64) -> Result<(), String> {
        let ring_ok = |n: u64| n.is_power_of_two() && (64..=(1 << 32)).contains(&n);
        if self.header_size as usize != size_of::<RegionHeader>() {
            return Err(format!("header size {}", self.header_size));
        }
        if self.channel_count == 0 || self.channel_count > 4096 {
            return Err(format!("channel count {}", self.channel_count));
        }
        if !ring_ok(self.cmd_ring_size) || !ring_ok(self.resp_ring_size) {
            return Err(format!(
                "ring sizes {} / {} (must be powers of two from 64 B to 4 GiB)",
                self.cmd_ring_size, self.resp_ring_size
            ));
        }
        if self.arena_size > MAX_ARENA {
            return Err(format!(
                "arena size {} exceeds the limit of {MAX_ARENA} bytes",
                self.arena_size
            ));
        }
        if !self.arena_size.is_multiple_of(PAGE) {
            return Err(format!(
                "arena size {} is not page-aligned",
                self.arena_size
            ));
        }
        if !self.heap_size.is_multiple_of(PAGE) || self.heap_size > 1 << 48 {
            return Err(format!(
                "heap size {} is not page-aligned or too large",
                self.heap_size
            ));
        }
        let expect = RegionHeader::for_config(
            self.channel_count,
            self.cmd_ring_size,
            self.resp_ring_size,
            self.arena_size,
            self.heap_size,
        );
        if (
            self.channel_offset,
            self.channel_stride,
            self.heap_offset,
            self.total_size,
        ) != (
            expect.channel_offset,
            expect.channel_stride,
            expect.heap_offset,
            expect.total_size,
        ) {
            return Err("offsets do not match the ring, arena and heap sizes".into());
        }
        if self.total_size > map_len || usize::try_from(self.total_size).is_err() {
            return Err(format!(
                "the layout needs {} bytes but the mapping has only {map_len}",
                self.total_size
            ));
        }
        Ok(())
    }

    /// Geometry of channel `index` (which must be below `channel_count`).
    pub fn channel(&self, index: u32) -> ChannelLayout {
        let base = (self.channel_offset + self.channel_stride * u64::from(index)) as usize;
        let cmd_data = base + CH_CONTROL as usize;
        let resp_data = cmd_data + self.cmd_ring_size as usize;
        let arena = resp_data + self.resp_ring_size as usize;
        ChannelLayout {
            base,
            cmd_data,
            cmd_size: self.cmd_ring_size as usize,
            resp_data,
            resp_size: self.resp_ring_size as usize,
            arena,
            arena_size: self.arena_size as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_size_is_stable() {
        assert_eq!(size_of::<RegionHeader>(), 88);
    }

    #[test]
    fn derived_layout_validates() {
        let h = RegionHeader::for_config(4, 1 << 16, 1 << 16, 1 << 20, 8 * PAGE);
        assert_eq!(h.validate(h.total_size), Ok(()));
        assert!(h.validate(h.total_size - 1).is_err());
        let c = h.channel(3);
        assert_eq!(c.base as u64 % PAGE, 0);
        assert_eq!((c.arena + c.arena_size) as u64, h.heap_offset);
        assert_eq!(h.heap_offset + h.heap_size, h.total_size);
    }

    #[test]
    fn inconsistent_headers_are_rejected() {
        let good = RegionHeader::for_config(2, 4096, 4096, 8192, 4096);
        for bad in [
            RegionHeader {
                channel_count: 0,
                ..good
            },
            RegionHeader {
                cmd_ring_size: 1000,
                ..good
            },
            RegionHeader {
                arena_size: 100,
                ..good
            },
            RegionHeader {
                channel_stride: 4096,
                ..good
            },
            RegionHeader {
                header_size: 8,
                ..good
            },
            RegionHeader {
                heap_size: 100,
                ..good
            },
            RegionHeader {
                heap_offset: good.heap_offset + 4096,
                ..good
            },
            // Sizes whose sums overflow 64 bits.
            RegionHeader {
                arena_size: u64::MAX - 4095,
                ..good
            },
            RegionHeader::for_config(4096, 1 << 32, 1 << 32, MAX_ARENA + PAGE, 0),
            RegionHeader {
                channel_count: 4096,
                channel_stride: u64::MAX / 2,
                heap_offset: u64::MAX - 8191,
                total_size: u64::MAX,
                ..good
            },
        ] {
            assert!(bad.validate(u64::MAX).is_err(), "{bad:?}");
        }
    }
}
