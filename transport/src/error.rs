//! Error types of the transport.

use std::path::PathBuf;

/// Errors from creating, opening or using a region.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backing file could not be opened, sized or mapped.
    #[error("{path}: {error}")]
    Io {
        /// The region's backing file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The file does not start with the region magic: it was never formatted
    /// as a region, or something overwrote it.
    #[error("{path}: not a region (magic {found:02x?}, expected {expected:02x?})")]
    BadMagic {
        /// The region's backing file.
        path: PathBuf,
        /// The first eight bytes found.
        found: [u8; 8],
        /// The magic every region starts with.
        expected: [u8; 8],
    },
    /// The region was formatted by an incompatible version of the layout.
    #[error("{path}: region layout version {found}, this build understands version {expected}")]
    BadVersion {
        /// The region's backing file.
        path: PathBuf,
        /// The version in the header.
        found: u32,
        /// The version this build writes and reads.
        expected: u32,
    },
    /// The header's sizes do not fit the mapping or contradict each other.
    #[error("{path}: bad region geometry: {reason}")]
    BadGeometry {
        /// The region's backing file.
        path: PathBuf,
        /// Which size is wrong, in words.
        reason: String,
    },
    /// A configuration given to [`crate::Region::create`] is invalid.
    #[error("invalid region configuration: {0}")]
    Config(String),
    /// Every channel of the region is claimed.
    #[error("all {0} channels of the region are in use")]
    NoFreeChannel(u32),
    /// A channel index beyond the region's channel count.
    #[error("channel {index} does not exist (the region has {count})")]
    NoSuchChannel {
        /// The index asked for.
        index: u32,
        /// How many channels the region has.
        count: u32,
    },
    /// Another live worker already serves the region.
    #[error("region is already served by worker pid {0}")]
    WorkerBusy(u32),
}

/// Errors of a ring or arena operation.
///
/// A consumer turns anything inconsistent that it finds in shared memory into
/// [`RingError::Corrupt`]; it never panics and never reads out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The message is larger than the ring could ever hold.
    #[error("message of {len} bytes exceeds the ring's limit of {max} bytes")]
    TooLarge {
        /// Length of the message.
        len: usize,
        /// Largest message this ring carries.
        max: usize,
    },
    /// Nothing arrived (or no space freed) before the deadline.
    #[error("timed out")]
    Timeout,
    /// The shared state is inconsistent; the peer is broken or hostile.
    #[error("ring corrupted: {0}")]
    Corrupt(&'static str),
    /// The channel was released or reclaimed while in use.
    #[error("channel is no longer owned by this endpoint")]
    Disconnected,
}

/// Errors of data-arena accesses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArenaError {
    /// An offset/length pair that does not lie inside the arena.
    #[error("arena range {offset}+{len} is outside the arena of {size} bytes")]
    OutOfBounds {
        /// Offset given.
        offset: u64,
        /// Length given.
        len: u64,
        /// Size of the arena.
        size: u64,
    },
}
