//! Shared-memory transport for exitless API remoting.
//!
//! A [`Region`] is a shared mapping — a `/dev/shm` file on the host, the
//! ivshmem BAR2 (`/sys/bus/pci/devices/<addr>/resource2`) inside a VM — with
//! a versioned header and a fixed number of channels. A guest process claims
//! a channel ([`Region::claim`]) and gets a [`GuestChannel`]: a command ring
//! to the worker, a response ring back, and a data [`Arena`] for bulk
//! buffers. The worker attaches to claimed channels ([`Region::attach`]) and
//! gets the opposite ends. The rings are lock-free SPSC queues of
//! variable-length messages, polled with a [`WaitStrategy`]; no system call
//! and no lock lies on the fast path.
//!
//! Everything read from shared memory is treated as hostile by its consumer:
//! corruption is reported as an error value, never as a panic, an
//! out-of-bounds access or a hang.
//!
//! ```
//! use transport::{Region, RegionConfig, WaitStrategy};
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("region");
//! let region = Region::create(&path, &RegionConfig::default())?;
//! let mut guest = region.claim()?;
//! let mut worker = region.attach(guest.index())?.expect("claimed");
//! guest.tx.send(b"ping", &WaitStrategy::BALANCED, None)?;
//! let mut msg = Vec::new();
//! worker.rx.recv(&mut msg, &WaitStrategy::BALANCED, None)?;
//! assert_eq!(msg, b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod arena;
pub mod bell;
mod channel;
pub mod doorbell;
mod error;
mod heap_view;
pub mod hostile;
pub mod layout;
mod region;
mod ring;
mod shm;
mod wait;

pub use arena::{ARENA_ALIGN, Arena, ArenaAllocator, ArenaBlock};
pub use channel::{
    ChannelState, ChannelStatus, GuestChannel, Heartbeat, LivenessTracker, Ownership, WorkerChannel,
};
pub use error::{ArenaError, Error, RingError};
pub use heap_view::{HeapView, SVM_HINTS};
pub use region::{Region, RegionConfig};
pub use ring::{Consumer, Producer, RECORD_HEADER, RingLayout};
pub use shm::Shm;
pub use wait::{Backoff, WaitStrategy};
