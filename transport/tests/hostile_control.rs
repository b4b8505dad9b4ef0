//! A guest that writes any value into any word of the region header's page
//! and of the channels' control pages (states and generations, owner pids,
//! heartbeats, ring counters, bells, the doorbell peer): every worker-side
//! operation ends in a value or an error, never a panic or a hang. The
//! bounded form of the `channel_control` fuzz target (see
//! `transport::hostile`).

use proptest::prelude::*;
use transport::{Region, RegionConfig, Shm};

/// The geometry `transport::hostile` exercises.
fn config() -> RegionConfig {
    RegionConfig {
        channels: 2,
        cmd_ring_size: 4096,
        resp_ring_size: 4096,
        arena_size: 4096,
        heap_size: 4096,
    }
}

/// Values a guest would try: small ones, states with any generation, the
/// extremes, and anything.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..4,
        (0u64..4, any::<u32>())
            .prop_map(|(state, generation)| (u64::from(generation) << 32) | state),
        Just(u64::MAX),
        Just(1 << 63),
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_worker_survives_any_control_words(
        writes in prop::collection::vec((any::<u32>(), value()), 0..24),
        claim in any::<bool>(),
    ) {
        // Sometimes a guest holds a channel (with a message queued) first.
        transport::hostile::run_writes(claim, &writes);
    }
}

/// The exerciser attaches a channel a guest holds (it would not find one
/// if it wrote outside the control pages' words it means to).
#[test]
fn with_no_writes_a_claimed_channel_is_attached() {
    assert_eq!(transport::hostile::run_writes(true, &[]), 1);
}

/// Found by the property test above: a guest that stores its response
/// ring's consumer counter ahead of the producer's before the worker
/// attaches made the worker's first send compute the free space with an
/// overflowing subtraction (a panic in debug builds, a wrong size in
/// release). The worker's end now refuses to send on such a ring.
#[test]
fn counters_left_inconsistent_before_attach_make_sends_fail_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("region");
    let region = Region::create(&path, &config()).unwrap();
    let guest = region.claim().unwrap();
    let shm = Shm::map(&path, None).unwrap();
    let base = region.header().channel(guest.index()).base;
    shm.atomic_u64(base + transport::layout::CH_RESP_TAIL)
        .store(1, std::sync::atomic::Ordering::Release);
    let mut worker = region.attach(guest.index()).unwrap().unwrap();
    assert!(matches!(
        worker.tx.try_send(b"reply"),
        Err(transport::RingError::Corrupt(_))
    ));
}

/// Found by fuzzing `channel_control`: a guest that stores a consumer
/// counter near 2^64 (and a producer counter to match) before the worker
/// attaches made the worker's first receive overflow while computing the
/// next position. Such counters are now refused as corrupt at creation.
#[test]
fn counters_near_the_top_of_the_range_are_refused() {
    transport::hostile::run(include_bytes!("regressions/channel_control-tail-overflow"));
}
