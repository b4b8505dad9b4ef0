//! A hostile peer: another process scribbles random bytes over a channel
//! (control words, both rings, the arena) while this process produces and
//! consumes. Every operation must return a message or an error, promptly:
//! no panic, no out-of-bounds access, no hang.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use transport::{Region, RegionConfig, RingError, WaitStrategy};

const RUN: Duration = Duration::from_secs(3);

/// xorshift64*: a tiny deterministic generator, enough for scribbling.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn consumer_survives_a_scribbling_process() {
    if common::role().as_deref() == Some("scribbler") {
        let path = PathBuf::from(std::env::var("AVA_TEST_REGION").unwrap());
        let region = Region::open(&path).unwrap();
        let layout = region.header().channel(0);
        let shm = transport::Shm::map(&path, None).unwrap();
        let span = layout.arena + layout.arena_size - layout.base;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let end = Instant::now() + RUN;
        while Instant::now() < end {
            let r = next(&mut rng);
            // Mostly hit the control page (counters, state), else anywhere.
            let off = if r.is_multiple_of(2) {
                (next(&mut rng) % 1024) as usize & !7
            } else {
                (next(&mut rng) as usize) % (span - 8)
            };
            shm.write(layout.base + off, &next(&mut rng).to_le_bytes());
            std::thread::sleep(Duration::from_micros(20));
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("region");
    let config = RegionConfig {
        channels: 1,
        cmd_ring_size: 4096,
        resp_ring_size: 4096,
        arena_size: 4096,
        heap_size: 0,
    };
    let region = Region::create(&path, &config).unwrap();
    let mut guest = region.claim().unwrap();
    let mut worker = region.attach(0).unwrap().unwrap();
    let mut peer = common::spawn_peer(
        "consumer_survives_a_scribbling_process",
        "scribbler",
        &[("AVA_TEST_REGION", path.display().to_string())],
    );
    let (mut ok, mut corrupt, mut slowest) = (0u64, 0u64, Duration::ZERO);
    let mut buf = Vec::new();
    let end = Instant::now() + RUN;
    let mut i = 0u64;
    while Instant::now() < end {
        i += 1;
        let _ = guest.tx.try_send(&i.to_le_bytes());
        let _ = worker.tx.try_send(&i.to_le_bytes());
        for rx in [&mut worker.rx, &mut guest.rx] {
            let t = Instant::now();
            match rx.try_recv(&mut buf) {
                Ok(true) => {
                    ok += 1;
                    assert!(buf.len() <= rx.max_message());
                }
                Ok(false) => {}
                Err(RingError::Corrupt(_)) => corrupt += 1,
                Err(e) => panic!("unexpected error kind {e}"),
            }
            slowest = slowest.max(t.elapsed());
        }
        // A blocking receive with a deadline must come back too.
        if i.is_multiple_of(1000) {
            let t = Instant::now();
            let r = worker.rx.recv(
                &mut buf,
                &WaitStrategy::IDLE,
                Some(Duration::from_millis(5)),
            );
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "recv overran its deadline: {r:?}"
            );
        }
    }
    assert!(peer.wait().unwrap().success());
    println!("ok {ok} corrupt {corrupt} slowest {slowest:?}");
    assert!(ok > 0, "some messages got through");
    assert!(corrupt > 0, "the scribbler did damage that was detected");
    assert!(
        slowest < Duration::from_millis(100),
        "a single poll took {slowest:?}"
    );
}
