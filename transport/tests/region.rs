//! Regions and channels: formatting, validation errors, claiming, release,
//! stale owners and the worker lease.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use transport::{
    ChannelState, Error, LivenessTracker, Region, RegionConfig, RingError, WaitStrategy, layout,
};

fn region(dir: &tempfile::TempDir, channels: u32) -> (PathBuf, Region) {
    let path = dir.path().join("region");
    let config = RegionConfig {
        channels,
        ..RegionConfig::default()
    };
    let r = Region::create(&path, &config).unwrap();
    (path, r)
}

#[test]
fn open_validates_magic_version_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let (path, r) = region(&dir, 2);
    assert_eq!(Region::open(&path).unwrap().header(), r.header());
    let shm = transport::Shm::map(&path, None).unwrap();

    shm.write(0, b"garbage!");
    let e = Region::open(&path).unwrap_err();
    assert!(matches!(e, Error::BadMagic { .. }), "{e}");
    assert!(e.to_string().contains("not a region"), "{e}");
    shm.write(0, &layout::MAGIC);

    shm.write(8, &99u32.to_le_bytes());
    let e = Region::open(&path).unwrap_err();
    assert!(matches!(e, Error::BadVersion { found: 99, .. }), "{e}");
    shm.write(8, &layout::VERSION.to_le_bytes());

    // A truncated file (a BAR that is too small for the layout).
    let len = r.header().total_size;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 4096)
        .unwrap();
    let e = Region::open(&path).unwrap_err();
    assert!(matches!(e, Error::BadGeometry { .. }), "{e}");
    assert!(e.to_string().contains("needs"), "{e}");

    let e = Region::open(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

/// A forged or corrupt header, whatever its sizes, is refused with a clear
/// error: never a panic, an overflow or a mapping past the file.
#[test]
fn forged_headers_are_refused_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let (path, r) = region(&dir, 2);
    let good = *r.header();
    let shm = transport::Shm::map(&path, None).unwrap();
    let forge = |h: &layout::RegionHeader| {
        use zerocopy::IntoBytes;
        shm.write(0, h.as_bytes());
        Region::open(&path)
    };
    let huge = u64::MAX - 4095;
    let cases = [
        (
            "arena near 2^64",
            layout::RegionHeader {
                arena_size: huge,
                ..good
            },
        ),
        (
            "arena whose stride wraps",
            layout::RegionHeader::for_config(2, 1 << 16, 1 << 16, huge, 0),
        ),
        (
            "heap near 2^64",
            layout::RegionHeader {
                heap_size: huge,
                ..good
            },
        ),
        (
            "4096 channels of 4 GiB rings and 1 TiB arenas",
            layout::RegionHeader::for_config(4096, 1 << 32, 1 << 32, layout::MAX_ARENA, 0),
        ),
        (
            "offsets near 2^64",
            layout::RegionHeader {
                channel_stride: u64::MAX / 2,
                heap_offset: u64::MAX - 8191,
                total_size: u64::MAX,
                ..good
            },
        ),
        (
            "ring of 2^63 bytes",
            layout::RegionHeader {
                cmd_ring_size: 1 << 63,
                ..good
            },
        ),
    ];
    for (what, h) in cases {
        let e = std::panic::catch_unwind(|| forge(&h))
            .unwrap_or_else(|_| panic!("{what}: opening panicked"))
            .expect_err(what);
        assert!(matches!(e, Error::BadGeometry { .. }), "{what}: {e}");
    }
    // The genuine header still opens.
    forge(&good).unwrap();
}

#[test]
fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = RegionConfig {
        cmd_ring_size: 1000,
        ..RegionConfig::default()
    };
    let e = Region::create(&dir.path().join("r"), &config).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}

#[test]
fn claim_release_and_generations() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = region(&dir, 2);
    let a = r.claim().unwrap();
    let b = r.claim().unwrap();
    assert_ne!(a.index(), b.index());
    assert!(matches!(r.claim(), Err(Error::NoFreeChannel(2))));
    let (ia, ga) = (a.index(), a.generation());
    assert_eq!(r.status(ia).unwrap().state, ChannelState::Claimed);
    drop(a);
    let s = r.status(ia).unwrap();
    assert_eq!((s.state, s.generation), (ChannelState::Free, ga + 1));
    // A stale generation can no longer free the channel.
    let c = r.claim().unwrap();
    assert_eq!(c.index(), ia);
    assert!(!r.reclaim(ia, ga).unwrap());
    assert!(c.is_current());
    assert!(r.attach(5).is_err());
}

#[test]
fn worker_sees_a_new_owner_and_fresh_rings() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = region(&dir, 1);
    let mut g = r.claim().unwrap();
    let mut w = r.attach(0).unwrap().unwrap();
    g.tx.try_send(b"one").unwrap();
    drop(g);
    assert!(!w.is_current());
    assert!(r.attach(0).unwrap().is_none());
    let mut g = r.claim().unwrap();
    let mut w2 = r.attach(0).unwrap().unwrap();
    assert!(w2.is_current());
    g.tx.try_send(b"two").unwrap();
    let mut buf = Vec::new();
    w2.rx.recv(&mut buf, &WaitStrategy::BALANCED, None).unwrap();
    assert_eq!(buf, b"two");
    // The old endpoint was made for the previous owner: it neither reads
    // the new owner's commands nor writes into its response ring.
    g.tx.try_send(b"three").unwrap();
    let mut stale = Vec::new();
    assert_eq!(w.rx.try_recv(&mut stale), Err(RingError::Disconnected));
    assert!(stale.is_empty(), "the stale endpoint read {stale:?}");
    assert_eq!(w.tx.try_send(b"forged"), Err(RingError::Disconnected));
    assert!(!w.is_current());
    // The new owner's traffic is intact.
    w2.rx.recv(&mut buf, &WaitStrategy::BALANCED, None).unwrap();
    assert_eq!(buf, b"three");
    assert_eq!(g.rx.try_recv(&mut buf), Ok(false));
    w2.tx.try_send(b"reply").unwrap();
    g.rx.recv(&mut buf, &WaitStrategy::BALANCED, None).unwrap();
    assert_eq!(buf, b"reply");
}

#[test]
fn a_released_guest_endpoint_cannot_send_or_receive() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = region(&dir, 1);
    let mut g = r.claim().unwrap();
    let gen0 = g.generation();
    let mut w = r.attach(0).unwrap().unwrap();
    assert!(r.reclaim(0, gen0).unwrap());
    assert_eq!(g.tx.try_send(b"late"), Err(RingError::Disconnected));
    assert_eq!(w.tx.try_send(b"late"), Err(RingError::Disconnected));
    assert!(!g.is_current() && !w.is_current());
}

#[test]
fn dead_owner_is_detected_and_reclaimed() {
    if common::role().as_deref() == Some("dies") {
        let path = PathBuf::from(std::env::var("AVA_TEST_REGION").unwrap());
        let region = Region::open(&path).unwrap();
        let ch = region.claim().unwrap();
        ch.beat();
        // Crash without releasing: no destructors run.
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, r) = region(&dir, 1);
    let mut peer = common::spawn_peer(
        "dead_owner_is_detected_and_reclaimed",
        "dies",
        &[("AVA_TEST_REGION", path.display().to_string())],
    );
    assert!(!peer.wait().unwrap().success());
    let s = r.status(0).unwrap();
    assert_eq!(s.state, ChannelState::Claimed);
    assert!(matches!(r.claim(), Err(Error::NoFreeChannel(1))));

    let mut tracker = LivenessTracker::new();
    let timeout = Duration::from_millis(50);
    assert!(
        tracker.stale(&r, timeout).is_empty(),
        "not stale at first sight"
    );
    std::thread::sleep(Duration::from_millis(80));
    let stale = tracker.stale(&r, timeout);
    assert_eq!(stale, vec![(0, s.generation)]);
    assert!(r.reclaim(0, s.generation).unwrap());
    let c = r.claim().unwrap();
    assert_eq!(c.generation(), s.generation + 1);

    // A live owner that beats is never stale.
    let mut tracker = LivenessTracker::new();
    for _ in 0..4 {
        c.beat();
        assert!(tracker.stale(&r, timeout).is_empty());
        std::thread::sleep(Duration::from_millis(30));
    }
}

#[test]
fn worker_lease_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let (_, r) = region(&dir, 1);
    let me = std::process::id();
    r.acquire_worker(me).unwrap();
    assert_eq!(r.worker_pid(), me);
    // pid 1 is alive and is not us: it cannot take the lease.
    let other = Region::open(r.path()).unwrap();
    assert!(matches!(other.acquire_worker(1), Err(Error::WorkerBusy(p)) if p == me));
    r.release_worker(me);
    other.acquire_worker(1).unwrap();
    // A lease held by a dead pid is taken over.
    r.release_worker(1);
    let dead = 0x3fff_fff0;
    r.acquire_worker(dead).unwrap();
    other.acquire_worker(me).unwrap();
    let before = r.worker_heartbeat();
    r.beat_worker();
    assert_eq!(other.worker_heartbeat(), before + 1);
}

/// The doorbells between a guest and a worker of one kernel: an idle
/// worker end sleeps on its bell and the guest's message wakes it at once
/// (not after the sleep's timeout), and so does the worker's reply for a
/// sleeping guest. A guest of another kernel (a VM's, here forged) is not
/// taken to ring.
#[test]
fn idle_ends_sleep_on_their_bells_and_messages_wake_them() {
    let dir = tempfile::tempdir().unwrap();
    let (path, r) = region(&dir, 2);
    r.acquire_worker(std::process::id()).unwrap();
    let guest_region = Region::open(&path).unwrap();
    let mut guest = guest_region.claim().expect("a free channel");
    assert!(guest.can_sleep(), "the guest shares the worker's kernel");
    let mut worker = r.attach(guest.index()).unwrap().expect("claimed");
    assert!(worker.guest_rings());
    let long = Duration::from_secs(10);
    for round in 0..20u8 {
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            guest.tx.try_send(&[round]).unwrap();
            guest
        });
        let t = std::time::Instant::now();
        let mut buf = Vec::new();
        while !worker.rx.try_recv(&mut buf).unwrap() {
            assert!(worker.rx.sleep(long));
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "woken by the message, not the timeout"
        );
        assert_eq!(buf, [round]);
        guest = sender.join().unwrap();
        // And back: the guest sleeps, the worker's reply wakes it.
        let replier = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            worker.tx.try_send(&[round, 1]).unwrap();
            worker
        });
        let t = std::time::Instant::now();
        while !guest.rx.try_recv(&mut buf).unwrap() {
            assert!(guest.rx.sleep(long));
        }
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(buf, [round, 1]);
        worker = replier.join().unwrap();
    }
    // A worker of another kernel: the guest neither sleeps nor is taken to ring.
    drop(worker);
    drop(guest);
    let shm = transport::Shm::map(&path, None).unwrap();
    shm.atomic_u64(layout::WORKER_KERNEL)
        .store(12345, std::sync::atomic::Ordering::Release);
    let guest = guest_region.claim().unwrap();
    assert!(!guest.can_sleep());
    let worker = r.attach(guest.index()).unwrap().unwrap();
    assert!(!worker.guest_rings());
}
