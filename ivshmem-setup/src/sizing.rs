//! Choosing a region layout that fits an ivshmem BAR.
//!
//! The region file is the BAR: its size must be a power of two (PCI BARs
//! are). With no arena size given, the channels share half of it evenly:
//! each channel's data arena takes whatever its share leaves after the
//! control page and the two rings, rounded down to whole pages. Whatever
//! the channels leave becomes the buffer heap.

use transport::RegionConfig;
use transport::layout::{CH_CONTROL, PAGE};

use crate::size::human_size;

/// Default number of channels.
pub const DEFAULT_CHANNELS: u32 = 4;
/// Default size of each ring (command and response).
pub const DEFAULT_RING_SIZE: u64 = 64 << 10;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRequest {
    /// Size of the region file, which is also the BAR size.
    pub file_size: u64,
    /// Number of channels.
    pub channels: u32,
    /// Size of each command and each response ring.
    pub ring_size: u64,
    /// Size of each channel's arena; `None` fills the file evenly.
    pub arena_size: Option<u64>,
}

impl SizeRequest {
    /// The defaults (4 channels, 64 KiB rings, arenas filling the rest) for a
    /// file of `file_size` bytes.
    pub fn new(file_size: u64) -> SizeRequest {
        SizeRequest {
            file_size,
            channels: DEFAULT_CHANNELS,
            ring_size: DEFAULT_RING_SIZE,
            arena_size: None,
        }
    }
}

/// Why no layout fits the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizingError {
    /// ivshmem exposes the file as a PCI BAR, whose size is a power of two.
    #[error(
        "size {size} bytes is not a power of two; an ivshmem BAR must be (try {below} or {above})"
    )]
    NotPowerOfTwo {
        /// The size given.
        size: u64,
        /// The power of two below, for people.
        below: String,
        /// The power of two above, for people.
        above: String,
    },
    /// Zero channels, or more than a region may hold.
    #[error("channel count {0} is out of range (1 to 4096)")]
    Channels(u32),
    /// Ring sizes are powers of two from 64 bytes.
    #[error("ring size {0} bytes must be a power of two of at least 64 bytes")]
    RingSize(u64),
    /// Arenas are made of whole pages.
    #[error("arena size {0} bytes must be a multiple of {PAGE} bytes")]
    ArenaSize(u64),
    /// The channels, rings and arenas need more than the file has.
    #[error(
        "{channels} channel(s) with {ring} rings and {arena} arenas need {needed} bytes ({needed_h}) but the region is {size} bytes ({size_h}); use a larger --size or fewer/smaller channels"
    )]
    TooSmall {
        /// Channel count.
        channels: u32,
        /// Ring size, for people.
        ring: String,
        /// Arena size, for people (or "one-page").
        arena: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes needed, for people.
        needed_h: String,
        /// Bytes available.
        size: u64,
        /// Bytes available, for people.
        size_h: String,
    },
}

fn page_ceil(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

/// Chooses the [`RegionConfig`] for `req`, or says why none fits.
///
/// ```
/// use ivshmem_setup::sizing::{plan, SizeRequest};
/// let config = plan(&SizeRequest::new(16 << 20)).unwrap();
/// assert_eq!(config.channels, 4);
/// assert!(config.total_size() <= 16 << 20);
/// ```
pub fn plan(req: &SizeRequest) -> Result<RegionConfig, SizingError> {
    let size = req.file_size;
    if !size.is_power_of_two() {
        let above = size.checked_next_power_of_two().unwrap_or(1 << 63);
        let below = if size == 0 { 1 } else { above / 2 };
        return Err(SizingError::NotPowerOfTwo {
            size,
            below: human_size(below),
            above: human_size(above),
        });
    }
    if req.channels == 0 || req.channels > 4096 {
        return Err(SizingError::Channels(req.channels));
    }
    if !req.ring_size.is_power_of_two() || !(64..=(1 << 32)).contains(&req.ring_size) {
        return Err(SizingError::RingSize(req.ring_size));
    }
    if let Some(arena) = req.arena_size
        && !arena.is_multiple_of(PAGE)
    {
        return Err(SizingError::ArenaSize(arena));
    }

    // Per channel: control page and rings, rounded up to whole pages, then the arena.
    let fixed = page_ceil(CH_CONTROL + 2 * req.ring_size);
    let channels = u64::from(req.channels);
    let arena = match req.arena_size {
        Some(a) => a,
        None => {
            let share = (size / 2).saturating_sub(PAGE) / channels / PAGE * PAGE;
            share.saturating_sub(fixed).max(PAGE)
        }
    };
    let mut config = RegionConfig {
        channels: req.channels,
        cmd_ring_size: req.ring_size,
        resp_ring_size: req.ring_size,
        arena_size: arena,
        heap_size: 0,
    };
    let needed = config.total_size();
    if needed > size {
        return Err(SizingError::TooSmall {
            channels: req.channels,
            ring: human_size(req.ring_size),
            arena: match req.arena_size {
                Some(a) => human_size(a),
                None => "one-page".into(),
            },
            needed,
            needed_h: human_size(needed),
            size,
            size_h: human_size(size),
        });
    }
    config.heap_size = (size - needed) / PAGE * PAGE;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_16m_region_fills_the_bar() {
        let c = plan(&SizeRequest::new(16 << 20)).unwrap();
        assert_eq!(
            (c.channels, c.cmd_ring_size, c.resp_ring_size),
            (4, 64 << 10, 64 << 10)
        );
        assert_eq!(c.arena_size % PAGE, 0);
        // The channels take half; the heap fills the rest exactly.
        assert_eq!(c.total_size(), 16 << 20);
        assert!(c.heap_size >= 8 << 20, "{c:?}");
        assert!(c.arena_size >= 1 << 20, "{c:?}");
    }

    #[test]
    fn explicit_sizes_are_kept() {
        let c = plan(&SizeRequest {
            file_size: 8 << 20,
            channels: 2,
            ring_size: 4096,
            arena_size: Some(1 << 20),
        })
        .unwrap();
        assert_eq!(c.arena_size, 1 << 20);
        assert_eq!(c.channels, 2);
        assert_eq!(c.total_size(), 8 << 20);
    }

    #[test]
    fn many_channels_in_a_small_bar() {
        let c = plan(&SizeRequest {
            file_size: 1 << 20,
            channels: 16,
            ring_size: 4096,
            arena_size: None,
        })
        .unwrap();
        assert!(c.total_size() <= 1 << 20);
        assert!(c.arena_size >= PAGE);
    }

    #[test]
    fn rejects_what_cannot_fit() {
        let e = plan(&SizeRequest::new(24 << 20)).unwrap_err();
        assert!(matches!(e, SizingError::NotPowerOfTwo { .. }));
        assert!(e.to_string().contains("try 16 MiB or 32 MiB"), "{e}");

        let e = plan(&SizeRequest::new(256 << 10)).unwrap_err();
        assert!(matches!(e, SizingError::TooSmall { .. }), "{e}");
        assert!(e.to_string().contains("use a larger --size"), "{e}");

        let e = plan(&SizeRequest {
            arena_size: Some(8 << 20),
            ..SizeRequest::new(16 << 20)
        })
        .unwrap_err();
        assert!(matches!(e, SizingError::TooSmall { .. }), "{e}");

        for bad in [
            SizeRequest {
                channels: 0,
                ..SizeRequest::new(16 << 20)
            },
            SizeRequest {
                ring_size: 1000,
                ..SizeRequest::new(16 << 20)
            },
            SizeRequest {
                arena_size: Some(1000),
                ..SizeRequest::new(16 << 20)
            },
        ] {
            assert!(plan(&bad).is_err(), "{bad:?}");
        }
    }
}
