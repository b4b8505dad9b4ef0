//! The worker's operations on a region whose header page and channel
//! control pages a hostile guest rewrote (states and generations, owner
//! pids, heartbeats, ring counters, bells, the doorbell peer, the header's
//! geometry): opening, status, attaching, the dead-guest tracker, taking a
//! channel back, doorbell wake-ups, draining a ring. Never a panic, never
//! an access outside the mapping (see `transport::hostile`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use transport::{Region, RegionConfig, Shm};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("region");
    let config = RegionConfig {
        channels: 2,
        cmd_ring_size: 4096,
        resp_ring_size: 4096,
        arena_size: 4096,
        heap_size: 4096,
    };
    let region = Region::create(&path, &config).expect("region");
    // The first byte says whether a guest holds a channel first; then
    // 12-byte records: an offset (u32) and the value stored there (u64).
    let (first, rest) = data.split_first().unwrap_or((&0, &[]));
    let guest = (first & 1 == 1).then(|| region.claim().expect("claim"));
    let writes: Vec<(u32, u64)> = rest
        .chunks_exact(12)
        .map(|c| {
            (
                u32::from_le_bytes(c[..4].try_into().expect("4 bytes")),
                u64::from_le_bytes(c[4..].try_into().expect("8 bytes")),
            )
        })
        .collect();
    let shm = Shm::map(&path, None).expect("map");
    transport::hostile::exercise(&region, &shm, &writes);
    drop(guest);
});
