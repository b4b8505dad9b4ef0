//! `ava-bench transport`: the rings against the physical limit (cache-line
//! ping-pong), against socket remoting (Unix and TCP), message throughput,
//! and arena bandwidth against `memcpy` and against the raw cross-core limit
//! — two processes on two pinned cores.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use transport::{Region, RegionConfig, Shm};

use crate::peer::{self, MSG, PING, PONG, WAIT};
use crate::report::{BenchResult, compare};

/// Iteration counts for one run.
struct Plan {
    rtt_rounds: u64,
    socket_rounds: u64,
    messages: u64,
    bytes_per_size: u64,
}

const QUICK: Plan = Plan {
    rtt_rounds: 200_000,
    socket_rounds: 20_000,
    messages: 5_000_000,
    bytes_per_size: 256 << 20,
};
const FULL: Plan = Plan {
    rtt_rounds: 2_000_000,
    socket_rounds: 100_000,
    messages: 50_000_000,
    bytes_per_size: 2 << 30,
};

/// Alternating rounds of the bandwidth measurements.
const BW_ROUNDS: u64 = 4;
/// Alternating rounds of the round-trip measurements.
const RTT_ROUNDS: u64 = 16;
/// Bulk transfer sizes.
const SIZES: [usize; 6] = [4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20];
/// Pipelining unit of bulk transfers, and how many are in flight: the
/// arena holds that many, a window that stays within a core's L2 cache.
const CHUNK: usize = 128 << 10;
const SLOTS: usize = 4;

/// A scratch file in `/dev/shm` (or the temp dir), removed on drop.
struct ScratchFile(PathBuf);

impl ScratchFile {
    fn new(tag: &str) -> ScratchFile {
        let dir = Path::new("/dev/shm");
        let dir = if dir.is_dir() {
            dir.to_owned()
        } else {
            std::env::temp_dir()
        };
        ScratchFile(dir.join(format!("ava-bench-{}-{tag}", std::process::id())))
    }
    fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Times `rounds` calls of `round`, dropping the first tenth as warm-up.
fn time_rounds(
    rounds: u64,
    round: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<Histogram<u64>> {
    time_checked_rounds(rounds, round, |_| Ok(()))
}

/// Like [`time_rounds`], with a check of each round's result made outside
/// the timed part (a bare ping-pong checks nothing either).
fn time_checked_rounds(
    rounds: u64,
    mut round: impl FnMut(u64) -> anyhow::Result<()>,
    mut check: impl FnMut(u64) -> anyhow::Result<()>,
) -> anyhow::Result<Histogram<u64>> {
    let mut h = histogram();
    let warm = rounds / 10;
    for i in 0..rounds + warm {
        let t = Instant::now();
        round(i)?;
        let ns = t.elapsed().as_nanos() as u64;
        check(i)?;
        if i >= warm {
            h.record(ns.max(1))?;
        }
    }
    Ok(h)
}

/// Runs the whole transport benchmark with the parent on `cores[0]` and the
/// peer on `cores[1]`.
pub fn run(quick: bool, cores: [usize; 2]) -> anyhow::Result<Vec<BenchResult>> {
    let plan = if quick { &QUICK } else { &FULL };
    peer::pin(cores[0])?;
    let mut results = Vec::new();
    // Ping-pong and ring rounds alternate: how the two vCPUs of a shared
    // machine are placed changes the physical limit from minute to minute,
    // and both must see the same placements.
    let (mut pp, mut rr, mut r56) = (histogram(), histogram(), histogram());
    let per_round = plan.rtt_rounds / RTT_ROUNDS;
    // Each round's ring p50 over its own ping-pong p50: a paired
    // comparison, which a placement change between rounds does not skew
    // (pooled p50s of rounds at different placements can fall in
    // different modes).
    let (mut paired, mut paired56) = (Vec::new(), Vec::new());
    for r in 0..RTT_ROUNDS {
        eprintln!(
            "[1-2/6] round {}/{RTT_ROUNDS}: cache-line ping-pong, ring request/response ...",
            r + 1
        );
        let p = pingpong(per_round, cores[1])?;
        let q = ring_rtt(per_round, cores[1], MSG)?;
        let q56 = ring_rtt(per_round, cores[1], ONE_LINE)?;
        let base = p.value_at_quantile(0.5).max(1) as f64;
        paired.push(q.value_at_quantile(0.5) as f64 / base);
        paired56.push(q56.value_at_quantile(0.5) as f64 / base);
        pp.add(p)?;
        rr.add(q)?;
        r56.add(q56)?;
    }
    results.push(BenchResult::latency("pingpong_rtt", &pp));
    results.push(BenchResult::latency("ring_rtt", &rr));
    // A message whose record (8-byte header + payload) fills exactly one
    // cache line, as the ping-pong's word does: shows what the second line
    // of a 64-byte message costs.
    results.push(BenchResult::latency("ring_rtt_56b", &r56));
    results.push(BenchResult::value(
        "ring_rtt_paired",
        "x",
        median(&mut paired),
    ));
    results.push(BenchResult::value(
        "ring_56b_paired",
        "x",
        median(&mut paired56),
    ));
    eprintln!("[3/6] Unix socket request/response ...");
    results.push(BenchResult::latency("unix_rtt", &unix_rtt(plan, cores[1])?));
    eprintln!("[4/6] TCP loopback request/response ...");
    results.push(BenchResult::latency("tcp_rtt", &tcp_rtt(plan, cores[1])?));
    eprintln!("[5/6] one-way message throughput ...");
    results.push(BenchResult::value(
        "ring_msgs_per_s",
        "msgs/s",
        throughput(plan, cores[1])?,
    ));
    eprintln!("[6/6] arena bandwidth vs memcpy and the raw cross-core pipeline ...");
    let bw = bandwidth(plan, cores[1])?;
    results.extend(bw);

    compare(&mut results, "ring_rtt", "pingpong_rtt");
    compare(&mut results, "ring_rtt_56b", "pingpong_rtt");
    compare(&mut results, "unix_rtt", "ring_rtt");
    compare(&mut results, "tcp_rtt", "ring_rtt");
    for size in SIZES {
        let n = size_name(size);
        compare(
            &mut results,
            &format!("arena_bw_{n}"),
            &format!("memcpy_bw_{n}"),
        );
        compare(
            &mut results,
            &format!("xcore_bw_{n}"),
            &format!("memcpy_bw_{n}"),
        );
    }
    Ok(results)
}

/// The median of `v` (not empty).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pingpong(n: u64, core: usize) -> anyhow::Result<Histogram<u64>> {
    let file = ScratchFile::new("pingpong");
    let shm = Shm::map(&file.0, Some(4096))?;
    let rounds = n + n / 10;
    let mut child = peer::spawn("pingpong", core, &[file.arg(), rounds.to_string()])?;
    let (ping, pong) = (shm.atomic_u64(PING), shm.atomic_u64(PONG));
    let h = time_rounds(n, |i| {
        ping.store(i + 1, Ordering::Release);
        while pong.load(Ordering::Acquire) != i + 1 {
            std::hint::spin_loop();
        }
        Ok(())
    })?;
    anyhow::ensure!(child.wait()?.success(), "ping-pong peer failed");
    Ok(h)
}

/// Payload whose record is exactly one cache line.
const ONE_LINE: usize = 56;

fn ring_rtt(n: u64, core: usize, len: usize) -> anyhow::Result<Histogram<u64>> {
    let file = ScratchFile::new("ring");
    let region = Region::create(
        &file.0,
        &RegionConfig {
            channels: 1,
            ..Default::default()
        },
    )?;
    let mut ch = region.claim()?;
    let mut child = peer::spawn("ring-echo", core, &[file.arg()])?;
    // Message `i`: its number, then zeros.
    let mut msg = vec![0u8; len];
    let reply = std::cell::RefCell::new(Vec::with_capacity(len));
    let h = time_checked_rounds(
        n,
        |i| {
            msg[..8].copy_from_slice(&i.to_le_bytes());
            ch.tx.send(&msg, &WAIT, None)?;
            ch.rx.recv(&mut reply.borrow_mut(), &WAIT, None)?;
            Ok(())
        },
        |i| {
            let r = reply.borrow();
            anyhow::ensure!(
                r.len() == len && r[..8] == i.to_le_bytes() && r[8..].iter().all(|&b| b == 0),
                "echo mismatch in round {i}"
            );
            Ok(())
        },
    )?;
    ch.tx.send(&[], &WAIT, None)?;
    anyhow::ensure!(child.wait()?.success(), "ring peer failed");
    Ok(h)
}

fn socket_rtt<S: Read + Write>(plan: &Plan, mut s: S) -> anyhow::Result<Histogram<u64>> {
    let mut msg = [7u8; MSG];
    let mut reply = [0u8; MSG];
    time_rounds(plan.socket_rounds, |i| {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        s.write_all(&msg)?;
        s.read_exact(&mut reply)?;
        anyhow::ensure!(reply == msg, "echo mismatch");
        Ok(())
    })
}

fn unix_rtt(plan: &Plan, core: usize) -> anyhow::Result<Histogram<u64>> {
    let path = std::env::temp_dir().join(format!("ava-bench-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    let mut child = peer::spawn("unix-echo", core, &[path.display().to_string()])?;
    let (s, _) = listener.accept()?;
    let _ = std::fs::remove_file(&path);
    let h = socket_rtt(plan, &s)?;
    drop(s);
    anyhow::ensure!(child.wait()?.success(), "unix peer failed");
    Ok(h)
}

fn tcp_rtt(plan: &Plan, core: usize) -> anyhow::Result<Histogram<u64>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let mut child = peer::spawn("tcp-echo", core, &[addr])?;
    let (s, _) = listener.accept()?;
    s.set_nodelay(true)?;
    let h = socket_rtt(plan, &s)?;
    drop(s);
    anyhow::ensure!(child.wait()?.success(), "tcp peer failed");
    Ok(h)
}

fn throughput(plan: &Plan, core: usize) -> anyhow::Result<f64> {
    let file = ScratchFile::new("tput");
    let config = RegionConfig {
        channels: 1,
        cmd_ring_size: 1 << 20,
        ..Default::default()
    };
    let region = Region::create(&file.0, &config)?;
    let mut ch = region.claim()?;
    let mut child = peer::spawn("ring-sink", core, &[file.arg(), plan.messages.to_string()])?;
    let mut msg = [0u8; MSG];
    let start = Instant::now();
    let mut sum = 0u64;
    for i in 0..plan.messages {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        ch.tx.send(&msg, &WAIT, None)?;
        sum = sum.wrapping_add(i);
    }
    let mut ack = Vec::new();
    ch.rx.recv(&mut ack, &WAIT, Some(Duration::from_secs(60)))?;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(ack == sum.to_le_bytes(), "sink saw different messages");
    anyhow::ensure!(child.wait()?.success(), "sink peer failed");
    Ok(plan.messages as f64 / secs)
}

/// `4KiB`, `16MiB`, ...
pub fn size_name(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{}MiB", size >> 20)
    } else {
        format!("{}KiB", size >> 10)
    }
}

/// Seconds taken by `reps` plain copies of `src` into `dst` (of the same
/// length): the in-core baseline of every bandwidth figure.
pub fn memcpy_secs_of(src: &[u8], dst: &mut [u8], reps: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..reps {
        dst.copy_from_slice(src);
        std::hint::black_box(&mut *dst);
    }
    t.elapsed().as_secs_f64()
}

/// Layout of the raw pipeline's file: one flag word per slot (own line
/// pair), then the slots.
pub const RAW_FLAGS: usize = 0;
/// See [`RAW_FLAGS`].
pub const RAW_DATA: usize = 64 * 128;
/// A notice's `off` that starts a raw round instead of an arena chunk.
pub const RAW_ROUND: u64 = u64::MAX;

/// One raw round: `reps` copies of `src` through `slots` slots of `chunk`
/// bytes in `raw`, the peer copying each slot out as its flag rises and
/// lowering the flag when done. Returns the seconds taken.
fn raw_round(
    raw: &Shm,
    ch: &mut transport::GuestChannel,
    src: &[u8],
    chunk: usize,
    slots: usize,
    reps: u64,
) -> anyhow::Result<f64> {
    let per_rep = src.len().div_ceil(chunk) as u64;
    let round = notice(
        RAW_ROUND,
        chunk as u64 | (slots as u64) << 32,
        reps * per_rep,
    );
    ch.tx.send(&round, &WAIT, None)?;
    let mut ack = Vec::new();
    ch.rx.recv(&mut ack, &WAIT, Some(Duration::from_secs(30)))?;
    let t = Instant::now();
    let mut k = 0u64;
    for _ in 0..reps {
        for at in (0..src.len()).step_by(chunk) {
            let slot = (k % slots as u64) as usize;
            let flag = raw.atomic_u64(RAW_FLAGS + slot * 128);
            while flag.load(Ordering::Acquire) != 0 {
                std::hint::spin_loop();
            }
            let len = chunk.min(src.len() - at);
            raw.write(RAW_DATA + slot * chunk, &src[at..at + len]);
            flag.store(k + 1, Ordering::Release);
            k += 1;
        }
    }
    ch.rx.recv(&mut ack, &WAIT, Some(Duration::from_secs(30)))?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        ack == k.to_le_bytes(),
        "raw peer saw {ack:?} chunks, not {k}"
    );
    Ok(secs)
}

fn notice(off: u64, len: u64, at: u64) -> [u8; 24] {
    let mut m = [0u8; 24];
    m[..8].copy_from_slice(&off.to_le_bytes());
    m[8..16].copy_from_slice(&len.to_le_bytes());
    m[16..].copy_from_slice(&at.to_le_bytes());
    m
}

/// Bulk bandwidth: the guest copies its buffer through the arena in
/// pipelined chunks; the worker copies each chunk out into its own buffer.
/// The baseline is one `memcpy` of the same size in one process.
///
/// Beside them, the physical limit of such a transfer: the same two copies
/// in the same pipeline (chunk size, slots, copy routine), synchronised by
/// nothing but one flag word per slot (`xcore_bw_*`). Every byte crosses
/// from one core's cache to the other's, which an in-core `memcpy` never
/// pays; the arena can only approach this figure, not the `memcpy`.
fn bandwidth(plan: &Plan, core: usize) -> anyhow::Result<Vec<BenchResult>> {
    let file = ScratchFile::new("arena");
    let raw_file = ScratchFile::new("xcore");
    let raw = Shm::map(&raw_file.0, Some((RAW_DATA + CHUNK * SLOTS) as u64))?;
    let config = RegionConfig {
        channels: 1,
        arena_size: (CHUNK * SLOTS) as u64,
        ..Default::default()
    };
    let region = Region::create(&file.0, &config)?;
    let mut ch = region.claim()?;
    let mut child = peer::spawn("arena-sink", core, &[file.arg(), raw_file.arg()])?;
    let mut out = Vec::new();
    let max = *SIZES.iter().max().expect("sizes");
    let src: Vec<u8> = (0..max).map(|i| (i * 7 + 3) as u8).collect();
    let mut dst = vec![0u8; max];
    let mut credit = Vec::new();
    for size in SIZES {
        let chunk = size.min(CHUNK);
        let slots = (config.arena_size as usize / chunk).min(64);
        let reps = (plan.bytes_per_size / size as u64 / BW_ROUNDS).max(2);
        ch.tx.send(&notice(0, 0, size as u64), &WAIT, None)?;
        ch.rx
            .recv(&mut credit, &WAIT, Some(Duration::from_secs(30)))?;
        // memcpy, arena and raw rounds alternate, as the round trips do.
        let (mut memcpy_secs, mut arena_secs, mut raw_secs) = (0.0, 0.0, 0.0);
        for _ in 0..BW_ROUNDS {
            memcpy_secs += memcpy_secs_of(&src[..size], &mut dst[..size], reps as usize);
            let mut free: Vec<u64> = (0..slots as u64).map(|s| s * chunk as u64).collect();
            let t = Instant::now();
            for _ in 0..reps {
                for at in (0..size).step_by(chunk) {
                    let len = chunk.min(size - at);
                    let off = match free.pop() {
                        Some(off) => off,
                        None => {
                            ch.rx
                                .recv(&mut credit, &WAIT, Some(Duration::from_secs(30)))?;
                            u64::from_le_bytes(credit[..8].try_into()?)
                        }
                    };
                    ch.arena.write(off, &src[at..at + len])?;
                    ch.tx
                        .send(&notice(off, len as u64, at as u64), &WAIT, None)?;
                }
            }
            while free.len() < slots {
                ch.rx
                    .recv(&mut credit, &WAIT, Some(Duration::from_secs(30)))?;
                free.push(u64::from_le_bytes(credit[..8].try_into()?));
            }
            arena_secs += t.elapsed().as_secs_f64();
            raw_secs += raw_round(&raw, &mut ch, &src[..size], chunk, slots, reps)?;
        }
        let bytes = (size as u64 * reps * BW_ROUNDS) as f64;
        let n = size_name(size);
        out.push(BenchResult::value(
            &format!("arena_bw_{n}"),
            "B/s",
            bytes / arena_secs,
        ));
        out.push(BenchResult::value(
            &format!("memcpy_bw_{n}"),
            "B/s",
            bytes / memcpy_secs,
        ));
        out.push(BenchResult::value(
            &format!("xcore_bw_{n}"),
            "B/s",
            bytes / raw_secs,
        ));
    }
    ch.tx.send(&[], &WAIT, None)?;
    anyhow::ensure!(child.wait()?.success(), "arena peer failed");
    Ok(out)
}
