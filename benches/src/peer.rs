//! Two-process plumbing: pinning to a core, starting the peer process, and
//! the peer's side of every transport measurement.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::Ordering;

use anyhow::{Context, bail};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;
use transport::{Region, Shm, WaitStrategy};

use crate::transport_bench::{RAW_DATA, RAW_FLAGS, RAW_ROUND};

/// Offsets of the two ping-pong words in the ping-pong file (own lines).
pub const PING: usize = 0;
/// See [`PING`].
pub const PONG: usize = 128;
/// Payload size of request/response and throughput messages.
pub const MSG: usize = 64;
/// The peers spin: each owns a core.
pub const WAIT: WaitStrategy = WaitStrategy::LOW_LATENCY;
/// The core argument of a peer that is pinned to no core.
pub const ANY_CORE: &str = "any";

/// Pins the calling thread to `core`.
pub fn pin(core: usize) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    set.set(core).with_context(|| format!("core {core}"))?;
    sched_setaffinity(Pid::from_raw(0), &set).with_context(|| format!("pinning to core {core}"))?;
    Ok(())
}

/// Starts this binary as peer `role`, pinned to `core`.
pub fn spawn(role: &str, core: usize, args: &[String]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .arg("peer")
        .arg(role)
        .arg(core.to_string())
        .args(args)
        .spawn()
        .context("starting the peer process")?;
    Ok(child)
}

/// The peer's main: `args[0]` is its core (or [`ANY_CORE`]), the rest
/// depend on the role.
pub fn run(role: &str, args: &[String]) -> anyhow::Result<()> {
    let core = args.first().context("core")?;
    if core != ANY_CORE {
        pin(core.parse()?)?;
    }
    let rest = &args[1..];
    let arg = |i: usize| rest.get(i).map(String::as_str).context("missing argument");
    match role {
        "pingpong" => pingpong(Path::new(arg(0)?), arg(1)?.parse()?),
        "ring-echo" => ring_echo(Path::new(arg(0)?)),
        "ring-sink" => ring_sink(Path::new(arg(0)?), arg(1)?.parse()?),
        "arena-sink" => arena_sink(Path::new(arg(0)?), Path::new(arg(1)?)),
        "unix-echo" => {
            let s = std::os::unix::net::UnixStream::connect(arg(0)?)?;
            socket_echo(s, echo_size(rest)?)
        }
        "tcp-echo" => {
            let s = std::net::TcpStream::connect(arg(0)?)?;
            s.set_nodelay(true)?;
            socket_echo(s, echo_size(rest)?)
        }
        "bridge-worker-side" | "bridge-guest-side" => crate::socket_bridge::peer_role(role, rest),
        "query-guest" => crate::opencl_bench::query_guest_role(arg(0)?.parse()?),
        "opencl-guest" => crate::opencl_bench::guest_role(arg(0)?.parse()?, arg(1)?.parse()?),
        "idle-guest" => crate::opencl_bench::idle_guest_role(arg(0)?.parse()?),
        "scaling-guest" => crate::opencl_bench::scaling_guest_role(arg(0)?.parse()?),
        "blocker" => crate::opencl_bench::blocker_role(arg(0)?.parse()?, false),
        "native-blocker" => crate::opencl_bench::blocker_role(arg(0)?.parse()?, true),
        other => bail!("unknown peer role {other}"),
    }
}

fn pingpong(path: &Path, rounds: u64) -> anyhow::Result<()> {
    let shm = Shm::map(path, None)?;
    let (ping, pong) = (shm.atomic_u64(PING), shm.atomic_u64(PONG));
    for i in 1..=rounds {
        while ping.load(Ordering::Acquire) != i {
            std::hint::spin_loop();
        }
        pong.store(i, Ordering::Release);
    }
    Ok(())
}

fn attach(path: &Path) -> anyhow::Result<transport::WorkerChannel> {
    let region = Region::open(path)?;
    loop {
        if let Some(w) = region.attach(0)? {
            return Ok(w);
        }
        std::thread::yield_now();
    }
}

fn ring_echo(path: &Path) -> anyhow::Result<()> {
    let mut w = attach(path)?;
    let mut buf = Vec::with_capacity(MSG);
    loop {
        w.rx.recv(&mut buf, &WAIT, None)?;
        if buf.is_empty() {
            return Ok(());
        }
        w.tx.send(&buf, &WAIT, None)?;
    }
}

fn ring_sink(path: &Path, count: u64) -> anyhow::Result<()> {
    let mut w = attach(path)?;
    let mut buf = Vec::with_capacity(MSG);
    let mut sum = 0u64;
    for i in 0..count {
        w.rx.recv(&mut buf, &WAIT, None)?;
        let seq = u64::from_le_bytes(buf[..8].try_into()?);
        anyhow::ensure!(seq == i, "message {i} arrived as {seq}");
        sum = sum.wrapping_add(seq);
    }
    w.tx.send(&sum.to_le_bytes(), &WAIT, None)?;
    Ok(())
}

/// Receives `(arena offset, len, dest offset)` chunk notices, copies each
/// chunk into its destination buffer and returns a credit; a zero-length
/// notice ends a transfer and is acknowledged; an empty message ends all.
fn arena_sink(path: &Path, raw_path: &Path) -> anyhow::Result<()> {
    let mut w = attach(path)?;
    let raw = Shm::map(raw_path, None)?;
    let mut buf = Vec::with_capacity(32);
    let mut dest: Vec<u8> = Vec::new();
    loop {
        w.rx.recv(&mut buf, &WAIT, None)?;
        if buf.is_empty() {
            return Ok(());
        }
        let word = |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().expect("8"));
        let (off, len, at) = (word(0), word(1) as usize, word(2) as usize);
        if off == RAW_ROUND {
            let (chunk, slots) = (len & 0xffff_ffff, len >> 32);
            raw_sink(&raw, &mut w, &mut dest, chunk, slots, at as u64)?;
            continue;
        }
        if len == 0 {
            // A new transfer size: `at` is the total; make sure the pages exist.
            dest.resize(at, 1);
            w.tx.send(&[], &WAIT, None)?;
            continue;
        }
        w.arena.read(off, &mut dest[at..at + len])?;
        w.tx.send(&off.to_le_bytes(), &WAIT, None)?;
    }
}

/// The peer's side of a raw round (see `transport_bench::raw_round`):
/// `count` chunks of (at most) `chunk` bytes through `slots` slots, each
/// copied into `dest` once its flag rises; the transfer size is `dest`'s.
fn raw_sink(
    raw: &Shm,
    w: &mut transport::WorkerChannel,
    dest: &mut [u8],
    chunk: usize,
    slots: usize,
    count: u64,
) -> anyhow::Result<()> {
    let size = dest.len();
    let per_rep = size.div_ceil(chunk) as u64;
    w.tx.send(&[], &WAIT, None)?;
    for k in 0..count {
        let slot = (k % slots as u64) as usize;
        let flag = raw.atomic_u64(RAW_FLAGS + slot * 128);
        while flag.load(Ordering::Acquire) != k + 1 {
            std::hint::spin_loop();
        }
        let at = (k % per_rep) as usize * chunk;
        let len = chunk.min(size - at);
        raw.read(RAW_DATA + slot * chunk, &mut dest[at..at + len]);
        flag.store(0, Ordering::Release);
    }
    w.tx.send(&count.to_le_bytes(), &WAIT, None)?;
    Ok(())
}

/// The message size of an echo peer: its second argument, or [`MSG`].
fn echo_size(args: &[String]) -> anyhow::Result<usize> {
    Ok(args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(MSG))
}

fn socket_echo<S: Read + Write>(mut s: S, size: usize) -> anyhow::Result<()> {
    let mut buf = vec![0u8; size];
    loop {
        if let Err(e) = s.read_exact(&mut buf) {
            return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Ok(())
            } else {
                Err(e.into())
            };
        }
        s.write_all(&buf)?;
    }
}
