//! The worker's end of a channel reading a command ring whose bytes (record
//! headers, lengths, payloads) and counters a hostile guest wrote: every
//! record is either delivered within bounds or refused as corrupt. Never a
//! panic, never a read outside the ring.
#![no_main]

use libfuzzer_sys::fuzz_target;
use transport::{Region, RegionConfig, Shm, layout};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("region");
    let config = RegionConfig {
        channels: 1,
        cmd_ring_size: 4096,
        resp_ring_size: 4096,
        arena_size: 4096,
        heap_size: 0,
    };
    let region = Region::create(&path, &config).expect("region");
    let _guest = region.claim().expect("claim");
    let mut worker = region.attach(0).expect("attach").expect("claimed");
    let l = region.header().channel(0);
    let shm = Shm::map(&path, None).expect("map");
    // The first 16 bytes move the guest's head counter; the rest is ring data.
    let (counters, ring) = data.split_at(data.len().min(16));
    if counters.len() == 16 {
        let head = u64::from_le_bytes(counters[..8].try_into().expect("8 bytes"));
        shm.atomic_u64(l.base + layout::CH_CMD_HEAD)
            .store(head, std::sync::atomic::Ordering::Release);
    }
    shm.write(l.cmd_data, &ring[..ring.len().min(l.cmd_size)]);
    let mut buf = Vec::new();
    for _ in 0..64 {
        match worker.rx.try_recv(&mut buf) {
            Ok(true) => assert!(buf.len() <= l.cmd_size),
            Ok(false) | Err(_) => break,
        }
    }
});
