//! The worker's operations on a region whose header page and channel
//! control pages a hostile guest rewrote (states and generations, owner
//! pids, heartbeats, ring counters, bells, the doorbell peer, the header's
//! geometry): opening, status, attaching, the dead-guest tracker, taking a
//! channel back, doorbell wake-ups, draining a ring. Never a panic, never
//! an access outside the mapping (see `transport::hostile`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| transport::hostile::run(data));
