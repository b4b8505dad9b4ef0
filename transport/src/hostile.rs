//! The worker's view of a region whose guest-writable words hold whatever a
//! hostile guest stored: shared by the `channel_control` fuzz target and
//! the property test that CI runs (`tests/hostile_control.rs`).
//!
//! A VM can store any value, at any time, into the region header's words
//! (heartbeat, lease, kernel id, doorbell peer, region bell) and into every
//! channel's control page (state word with its generation, owner pid,
//! heartbeat, ring counters, bells, how the guest rings). What the worker
//! does with those words — opening the region, reading a channel's state,
//! attaching, looking for dead guests, taking a channel back, waking bells
//! after a doorbell, draining a ring — must end in a value or an error,
//! never a panic, a hang or an access outside the mapping.

use std::time::Duration;

use crate::{LivenessTracker, Region, RegionConfig, Shm, layout};

/// The fuzz target's input, decoded and given to [`run_writes`]: the first
/// byte says whether a guest holds a channel first; then 12-byte records,
/// an offset (u32, little-endian) and the value stored there (u64).
pub fn run(data: &[u8]) {
    let (first, rest) = data.split_first().unwrap_or((&0, &[]));
    let writes: Vec<(u32, u64)> = rest
        .chunks_exact(12)
        .map(|c| {
            (
                u32::from_le_bytes(c[..4].try_into().expect("4 bytes")),
                u64::from_le_bytes(c[4..].try_into().expect("8 bytes")),
            )
        })
        .collect();
    run_writes(first & 1 == 1, &writes);
}

/// [`exercise`] on a fresh region of two channels in a temporary
/// directory, where a guest first holds a channel with a message queued if
/// `claim`. Returns how many channels the worker could attach.
pub fn run_writes(claim: bool, writes: &[(u32, u64)]) -> usize {
    let dir = tempfile_dir();
    let path = dir.join("region");
    let config = RegionConfig {
        channels: 2,
        cmd_ring_size: 4096,
        resp_ring_size: 4096,
        arena_size: 4096,
        heap_size: 4096,
    };
    let region = Region::create(&path, &config).expect("region");
    let guest = claim.then(|| {
        let mut g = region.claim().expect("claim");
        let _ = g.tx.try_send(b"hello");
        g
    });
    let shm = Shm::map(&path, None).expect("map");
    let attached = exercise(&region, &shm, writes);
    drop(guest);
    drop(region);
    drop(shm);
    let _ = std::fs::remove_dir_all(&dir);
    attached
}

/// A fresh private directory under the system's temporary directory.
fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ava-hostile-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

/// Stores each `(offset, value)` of `writes` as a u64 into the words a
/// guest can write (the region header's page and every channel's control
/// page; `offset` is taken modulo their size and aligned) through `shm`,
/// a mapping of `region`'s file, then runs every worker-side operation on
/// `region`. Returns how many channels the worker could attach.
pub fn exercise(region: &Region, shm: &Shm, writes: &[(u32, u64)]) -> usize {
    let header = *region.header();
    let mut pages = vec![0usize];
    pages.extend((0..header.channel_count).map(|i| header.channel(i).base));
    let page = layout::PAGE as usize;
    for &(offset, value) in writes {
        let offset = offset as usize % (pages.len() * page);
        let at = pages[offset / page] + (offset % page) / 8 * 8;
        // The header's static fields are written once, before the magic;
        // a guest rewriting them is seen at the next open, below.
        shm.atomic_u64(at)
            .store(value, std::sync::atomic::Ordering::Release);
    }
    // A worker that opens the region now validates what it finds.
    let _ = Region::open(region.path());
    let mut tracker = LivenessTracker::new();
    let _ = tracker.stale(region, Duration::ZERO);
    let _ = region.worker_doorbell();
    let _ = region.worker_heartbeat();
    let _ = region.worker_pid();
    region.ring_all();
    let mut attached = 0;
    let mut buf = Vec::new();
    for i in 0..header.channel_count {
        let Ok(status) = region.status(i) else {
            continue;
        };
        if let Ok(Some(mut ch)) = region.attach(i) {
            attached += 1;
            let _ = ch.guest_rings();
            for _ in 0..8 {
                match ch.rx.try_recv(&mut buf) {
                    Ok(true) => assert!(buf.len() <= header.cmd_ring_size as usize),
                    Ok(false) | Err(_) => break,
                }
            }
            let _ = ch.tx.try_send(b"reply");
        }
        let _ = region.reclaim(i, status.generation);
    }
    attached
}
