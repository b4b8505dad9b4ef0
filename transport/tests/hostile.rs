//! A hostile peer: another process scribbles random bytes over a channel
//! (control words, both rings, the arena) while this process produces and
//! consumes. Every operation must come back with a message or an error of
//! an expected kind: no panic, no out-of-bounds access, no hang (a hang
//! leaves the test running, which the harness reports).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use transport::{Region, RegionConfig, RingError, WaitStrategy};

/// How many words the scribbler writes over the channel.
const SCRIBBLES: u32 = 50_000;
/// Messages each way through the channel before the scribbler starts.
const CLEAN: u64 = 1_000;

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
        for _ in 0..SCRIBBLES {
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
    let mut buf = Vec::new();

    // Undamaged, the channel carries every message intact, both ways.
    for i in 0..CLEAN {
        assert_eq!(guest.tx.try_send(&i.to_le_bytes()), Ok(true));
        assert_eq!(worker.rx.try_recv(&mut buf), Ok(true));
        assert_eq!(buf, i.to_le_bytes());
        assert_eq!(worker.tx.try_send(&(!i).to_le_bytes()), Ok(true));
        assert_eq!(guest.rx.try_recv(&mut buf), Ok(true));
        assert_eq!(buf, (!i).to_le_bytes());
    }

    // Then both ends keep going until the scribbler has done all its damage
    // (and a few blocking receives have been made).
    let mut peer = common::spawn_peer(
        "consumer_survives_a_scribbling_process",
        "scribbler",
        &[("AVA_TEST_REGION", path.display().to_string())],
    );
    let (mut ok, mut empty, mut corrupt) = (0u64, 0u64, 0u64);
    let mut blocking = 0u64;
    let mut i = 0u64;
    let status = loop {
        i += 1;
        if i.is_multiple_of(256)
            && blocking >= 10
            && let Some(status) = peer.try_wait().unwrap()
        {
            break status;
        }
        let _ = guest.tx.try_send(&i.to_le_bytes());
        let _ = worker.tx.try_send(&i.to_le_bytes());
        for rx in [&mut worker.rx, &mut guest.rx] {
            match rx.try_recv(&mut buf) {
                Ok(true) => {
                    ok += 1;
                    assert!(buf.len() <= rx.max_message());
                }
                Ok(false) => empty += 1,
                Err(RingError::Corrupt(_)) => corrupt += 1,
                Err(e) => panic!("unexpected error kind {e}"),
            }
        }
        // A blocking receive with a deadline must come back too, with a
        // message, a timeout or the damage it found.
        if i.is_multiple_of(1000) {
            blocking += 1;
            let r = worker.rx.recv(
                &mut buf,
                &WaitStrategy::IDLE,
                Some(Duration::from_millis(5)),
            );
            match r {
                Ok(()) => assert!(buf.len() <= worker.rx.max_message()),
                Err(RingError::Timeout | RingError::Corrupt(_)) => {}
                Err(e) => panic!("blocking receive: unexpected error kind {e}"),
            }
        }
    };
    assert!(status.success(), "the scribbler failed: {status}");
    println!("under attack: ok {ok} empty {empty} corrupt {corrupt}, blocking receives {blocking}");
    assert!(
        corrupt > 0,
        "the scribbler did damage that was detected (ok {ok}, empty {empty})"
    );
}
