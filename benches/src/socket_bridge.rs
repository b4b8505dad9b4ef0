//! The socket baseline of `ava-bench opencl`: the same generated
//! marshalling and the same worker, with the calls carried over a TCP or
//! Unix socket instead of the shared-memory rings, as socket-based
//! remoting systems (GVirtuS, Cricket, rCUDA, SCUDA) carry them.
//!
//! The guest library speaks only rings, so a pair of bridge processes
//! carries its messages across a socket:
//!
//! ```text
//!  guest ──ring──► guest side ══socket══► worker side ──ring──► ava-worker
//!        ◄─ring──  (serves a private      (a guest of the  ◄─ring──
//!                   region)                real region)
//! ```
//!
//! - The **guest side** creates a private region and serves it as its
//!   worker (it holds the region's worker lease and beats its heartbeat):
//!   for each channel a guest claims, it opens one connection to the worker
//!   side and forwards command ring → socket and socket → response ring.
//! - The **worker side** listens; for each connection it claims a channel
//!   of the real region (served by `ava-worker`) and forwards socket →
//!   command ring and response ring → socket, beating the channel's
//!   heartbeat.
//!
//! Each message travels as a frame: its length (u32, little-endian), then
//! its bytes. Each direction of each channel has a thread of its own; a
//! thread that reads a ring polls it with a short spin-then-yield back-off,
//! then sleeps on the ring's bell, which the producer rings.
//!
//! A call thus pays one socket round trip plus one extra ring round trip on
//! each side of the socket (the bridge's hops), which the benchmark
//! measures apart: the bare socket round trip ([`socket_rtt`]) and the
//! call over the rings alone.
//!
//! Only messages that carry their data inline can cross: a message that
//! refers to a channel's data arena or to the region's buffer heap (bulk
//! transfers) would name memory of the private region that the worker never
//! sees. The private region has a one-page arena and no heap, so the guest
//! library fails such calls instead of sending them; the socket baseline
//! measures small calls only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use transport::{
    Backoff, ChannelState, Consumer, LivenessTracker, Producer, Region, RegionConfig, RingError,
    WaitStrategy,
};

/// A socket transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// TCP over the loopback interface, with `TCP_NODELAY`.
    Tcp,
    /// A Unix stream socket.
    Unix,
}

impl Kind {
    /// Its name in figures and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Unix => "unix",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Kind> {
        match s {
            "tcp" => Ok(Kind::Tcp),
            "unix" => Ok(Kind::Unix),
            other => bail!("unknown socket kind {other}"),
        }
    }
}

/// How a bridge thread polls a ring before it sleeps on the ring's bell
/// (which the producer rings): a short spin, then a few yields, as the
/// worker's own channel threads do. A longer spin gains nothing where
/// the machine has fewer cores than the threads of a bridged call. The
/// sleeps of the strategy are never used.
const POLL: WaitStrategy = WaitStrategy {
    spins: 1 << 8,
    yields: 1 << 4,
    min_sleep: Duration::from_micros(20),
    max_sleep: Duration::from_micros(100),
};
/// Longest sleep on a bell: how soon an idle thread sees that its
/// connection ended.
const IDLE_STEP: Duration = Duration::from_millis(20);
/// Heartbeat period of both sides.
const BEAT: Duration = Duration::from_millis(100);
/// A private channel whose guest stopped beating for this long is
/// reclaimed.
const STALE_AFTER: Duration = Duration::from_secs(5);
/// Frames larger than this are refused (no ring carries them anyway).
const MAX_FRAME: usize = 16 << 20;

/// One connected socket of either kind.
enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn connect(kind: Kind, addr: &str) -> std::io::Result<Sock> {
        Ok(match kind {
            Kind::Tcp => {
                let s = TcpStream::connect(addr)?;
                s.set_nodelay(true)?;
                Sock::Tcp(s)
            }
            Kind::Unix => Sock::Unix(UnixStream::connect(addr)?),
        })
    }

    fn try_clone(&self) -> std::io::Result<Sock> {
        Ok(match self {
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
        })
    }

    /// Ends the connection both ways: the peer reads end-of-file, and so
    /// does every thread of this process that reads it.
    fn shutdown(&self) {
        let _ = match self {
            Sock::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
            Sock::Unix(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sock::Tcp(s) => s.flush(),
            Sock::Unix(s) => s.flush(),
        }
    }
}

/// A listening socket of either kind.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn bind(kind: Kind, addr: &str) -> std::io::Result<Listener> {
        Ok(match kind {
            Kind::Tcp => Listener::Tcp(TcpListener::bind(addr)?),
            Kind::Unix => {
                let _ = std::fs::remove_file(addr);
                Listener::Unix(UnixListener::bind(addr)?)
            }
        })
    }

    /// The address to connect to.
    fn addr(&self) -> std::io::Result<String> {
        Ok(match self {
            Listener::Tcp(l) => l.local_addr()?.to_string(),
            Listener::Unix(l) => l
                .local_addr()?
                .as_pathname()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        })
    }

    fn accept(&self) -> std::io::Result<Sock> {
        Ok(match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nodelay(true)?;
                Sock::Tcp(s)
            }
            Listener::Unix(l) => Sock::Unix(l.accept()?.0),
        })
    }
}

/// Writes `msg` as one frame, with one system call (`frame` is scratch).
fn write_frame(w: &mut Sock, frame: &mut Vec<u8>, msg: &[u8]) -> std::io::Result<()> {
    frame.clear();
    frame.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    frame.extend_from_slice(msg);
    w.write_all(frame)
}

/// Reads one frame into `out`; `Ok(false)` at end-of-file between frames.
fn read_frame(r: &mut impl BufRead, out: &mut Vec<u8>) -> anyhow::Result<bool> {
    if r.fill_buf()?.is_empty() {
        return Ok(false);
    }
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    anyhow::ensure!(len <= MAX_FRAME, "a frame of {len} bytes");
    out.resize(len, 0);
    r.read_exact(out)?;
    Ok(true)
}

/// Waits for the next message of `rx`: polls with [`POLL`], then sleeps on
/// the ring's bell in steps of [`IDLE_STEP`]. `Ok(false)` once `stop` is
/// set or `current` says that the channel changed hands (an empty ring
/// does not tell).
fn recv(
    rx: &mut Consumer,
    out: &mut Vec<u8>,
    stop: &AtomicBool,
    current: &dyn Fn() -> bool,
) -> Result<bool, RingError> {
    loop {
        let mut backoff = Backoff::new(&POLL);
        while !backoff.is_sleeping() {
            if rx.try_recv(out)? {
                return Ok(true);
            }
            backoff.snooze(None)?;
        }
        if rx.try_recv(out)? {
            return Ok(true);
        }
        if stop.load(Ordering::Relaxed) || !current() {
            return Ok(false);
        }
        if !rx.sleep(IDLE_STEP) {
            std::thread::yield_now();
        }
    }
}

/// Ring → socket until the ring's channel changes hands, `stop` is set
/// or the socket fails; then ends the connection.
fn ring_to_socket(
    rx: &mut Consumer,
    mut sock: Sock,
    stop: &AtomicBool,
    current: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    let (mut msg, mut frame) = (Vec::with_capacity(4096), Vec::with_capacity(4096));
    let r = (|| -> anyhow::Result<()> {
        while recv(rx, &mut msg, stop, current)? {
            write_frame(&mut sock, &mut frame, &msg)?;
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    sock.shutdown();
    match r {
        Err(e) if is_disconnect(&e) => Ok(()),
        r => r,
    }
}

/// Socket → ring until end-of-file or a failure of either; then ends the
/// connection.
fn socket_to_ring(sock: Sock, tx: &mut Producer, stop: &AtomicBool) -> anyhow::Result<()> {
    let control = sock.try_clone()?;
    let mut reader = BufReader::with_capacity(256 << 10, sock);
    let mut msg = Vec::with_capacity(4096);
    let r = (|| -> anyhow::Result<()> {
        while read_frame(&mut reader, &mut msg)? {
            tx.send(&msg, &POLL, None)?;
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    control.shutdown();
    match r {
        Err(e) if is_disconnect(&e) => Ok(()),
        r => r,
    }
}

/// Whether `e` only says that the other end left.
fn is_disconnect(e: &anyhow::Error) -> bool {
    if let Some(RingError::Disconnected) = e.downcast_ref::<RingError>() {
        return true;
    }
    e.downcast_ref::<std::io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::NotConnected
        )
    })
}

/// The worker side (peer role `bridge-worker-side`): listens on `listen`
/// (a TCP address, port 0 for any, or a Unix socket path), prints the
/// address to connect to, then serves each connection with a channel of
/// the region at `region` claimed as a guest.
pub fn worker_side(kind: Kind, region: &Path, listen: &str) -> anyhow::Result<()> {
    let region = Region::open(region).with_context(|| region.display().to_string())?;
    let listener = Listener::bind(kind, listen)?;
    println!("{}", listener.addr()?);
    std::io::stdout().flush()?;
    loop {
        let sock = listener.accept()?;
        let region = region.clone();
        std::thread::spawn(move || {
            if let Err(e) = worker_connection(&region, sock) {
                eprintln!("bridge (worker side): {e:#}");
            }
        });
    }
}

/// One connection of the worker side: a channel of the real region,
/// claimed as a guest, its heartbeat kept beating, forwarded both ways.
fn worker_connection(region: &Region, sock: Sock) -> anyhow::Result<()> {
    let mut ch = match region.claim() {
        Ok(ch) => ch,
        Err(e) => {
            // The other side sees the connection end and gives its own
            // guest's channel back.
            sock.shutdown();
            return Err(e.into());
        }
    };
    let heartbeat = ch.heartbeat();
    let ownership = ch.ownership();
    let reader = sock.try_clone()?;
    let stop = AtomicBool::new(false);
    let (tx, rx) = (&mut ch.tx, &mut ch.rx);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                heartbeat.beat();
                std::thread::sleep(BEAT);
            }
        });
        let back = s.spawn(|| ring_to_socket(rx, sock, &stop, &|| ownership.holds()));
        let forth = socket_to_ring(reader, tx, &stop);
        let back = back
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")));
        forth.and(back)
    })
    // Dropping the channel gives it back to the worker.
}

/// The guest side (peer role `bridge-guest-side`): creates a private
/// region at `region`, serves it as its worker, prints `ready`, and
/// bridges each channel a guest claims to one connection to `addr`.
pub fn guest_side(kind: Kind, addr: &str, region: &Path) -> anyhow::Result<()> {
    let config = RegionConfig {
        channels: 4,
        cmd_ring_size: 256 << 10,
        resp_ring_size: 256 << 10,
        // No bulk data can cross the bridge: the smallest arena, no heap.
        arena_size: 4096,
        heap_size: 0,
    };
    let region = Region::create(region, &config).with_context(|| region.display().to_string())?;
    region.acquire_worker(std::process::id())?;
    region.beat_worker();
    println!("ready");
    std::io::stdout().flush()?;
    let count = region.channel_count();
    let mut live: Vec<Option<std::thread::JoinHandle<()>>> = (0..count).map(|_| None).collect();
    let mut tracker = LivenessTracker::new();
    let mut last_beat = Instant::now();
    loop {
        for i in 0..count {
            let slot = &mut live[i as usize];
            if slot.as_ref().is_some_and(|t| t.is_finished()) {
                let _ = slot.take().map(std::thread::JoinHandle::join);
            }
            if slot.is_some() {
                continue;
            }
            if let Some(ch) = region.attach(i)? {
                let (region, addr) = (region.clone(), addr.to_string());
                *slot = Some(std::thread::spawn(move || {
                    let generation = ch.generation();
                    if let Err(e) = guest_channel(&region, ch, kind, &addr) {
                        eprintln!("bridge (guest side), channel {i}: {e:#}");
                    }
                    // Whatever ended the bridge, the guest gets an error
                    // instead of waiting for a reply that cannot come.
                    let _ = region.reclaim(i, generation);
                    region.bell().ring();
                }));
            }
        }
        for (i, generation) in tracker.stale(&region, STALE_AFTER) {
            let _ = region.reclaim(i, generation);
        }
        if last_beat.elapsed() >= BEAT {
            region.beat_worker();
            last_beat = Instant::now();
        }
        // A guest of this kernel rings the region's bell after claiming a
        // channel; a channel's thread rings it when it ends.
        let bell = region.bell();
        bell.announce();
        let pending = (0..count).any(|i| match &live[i as usize] {
            Some(t) => t.is_finished(),
            None => region
                .status(i)
                .is_ok_and(|s| s.state == ChannelState::Claimed),
        });
        if pending {
            bell.awake();
        } else {
            bell.sleep(BEAT);
        }
    }
}

/// One channel of the guest side: a connection to the worker side,
/// forwarded both ways until the guest gives the channel back or the
/// connection ends.
fn guest_channel(
    region: &Region,
    ch: transport::WorkerChannel,
    kind: Kind,
    addr: &str,
) -> anyhow::Result<()> {
    let (index, generation) = (ch.index(), ch.generation());
    let current = || {
        region
            .status(index)
            .is_ok_and(|s| s.state == ChannelState::Claimed && s.generation == generation)
    };
    let sock = Sock::connect(kind, addr).with_context(|| format!("connecting to {addr}"))?;
    let reader = sock.try_clone()?;
    let stop = AtomicBool::new(false);
    let transport::WorkerChannel { mut rx, mut tx, .. } = ch;
    std::thread::scope(|s| {
        let forth = s.spawn(|| ring_to_socket(&mut rx, sock, &stop, &current));
        let back = socket_to_ring(reader, &mut tx, &stop);
        let forth = forth
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")));
        forth.and(back)
    })
}

/// The peer roles of the bridge: `bridge-worker-side KIND REGION LISTEN`
/// and `bridge-guest-side KIND ADDR REGION`.
pub fn peer_role(role: &str, args: &[String]) -> anyhow::Result<()> {
    let arg = |i: usize| args.get(i).map(String::as_str).context("missing argument");
    let kind = Kind::parse(arg(0)?)?;
    match role {
        "bridge-worker-side" => worker_side(kind, Path::new(arg(1)?), arg(2)?),
        "bridge-guest-side" => guest_side(kind, arg(1)?, Path::new(arg(2)?)),
        other => bail!("unknown bridge role {other}"),
    }
}

/// This binary as peer `role`, on no core in particular.
pub fn peer_command(role: &str, args: &[&str]) -> anyhow::Result<Command> {
    let mut c = Command::new(std::env::current_exe()?);
    c.arg("peer")
        .arg(role)
        .arg(crate::peer::ANY_CORE)
        .args(args);
    Ok(c)
}

/// Starts peer `role` and reads the first line it prints.
fn start(role: &str, args: &[&str]) -> anyhow::Result<(Child, String)> {
    let mut child = peer_command(role, args)?
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {role}"))?;
    let mut line = String::new();
    let out = child.stdout.take().context("stdout")?;
    BufReader::new(out).read_line(&mut line)?;
    if line.trim().is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{role} did not start");
    }
    Ok((child, line.trim().to_string()))
}

/// A running bridge pair: a guest that sets `AVA_REGION` to
/// [`Bridge::region`] has its calls carried over the socket to the worker
/// that serves the real region.
pub struct Bridge {
    children: Vec<Child>,
    /// The private region the guest side serves.
    pub region: PathBuf,
    sock: Option<PathBuf>,
}

impl Bridge {
    /// Starts both sides over `kind`, bridging to the real region at
    /// `real`.
    pub fn start(kind: Kind, real: &Path) -> anyhow::Result<Bridge> {
        let tag = format!("ava-bench-bridge-{}-{}", std::process::id(), kind.name());
        let region = PathBuf::from("/dev/shm").join(&tag);
        let sock = std::env::temp_dir().join(format!("{tag}.sock"));
        let mut bridge = Bridge {
            children: Vec::new(),
            region: region.clone(),
            sock: (kind == Kind::Unix).then(|| sock.clone()),
        };
        let listen = match kind {
            Kind::Tcp => "127.0.0.1:0".to_string(),
            Kind::Unix => sock.display().to_string(),
        };
        let real = real.display().to_string();
        let (child, addr) = start("bridge-worker-side", &[kind.name(), &real, &listen])?;
        bridge.children.push(child);
        let private = region.display().to_string();
        let (child, _) = start("bridge-guest-side", &[kind.name(), &addr, &private])?;
        bridge.children.push(child);
        Ok(bridge)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.region);
        if let Some(s) = &self.sock {
            let _ = std::fs::remove_file(s);
        }
    }
}

/// The bare round trip the bridge's socket adds: `rounds` messages of
/// `size` bytes written and echoed back over a fresh socket of `kind` to
/// a peer process (which blocks in `read`, as the bridge's threads do).
pub fn socket_rtt(kind: Kind, size: usize, rounds: usize) -> anyhow::Result<Histogram<u64>> {
    let sock = std::env::temp_dir().join(format!(
        "ava-bench-rtt-{}-{}.sock",
        std::process::id(),
        kind.name()
    ));
    let listen = match kind {
        Kind::Tcp => "127.0.0.1:0".to_string(),
        Kind::Unix => sock.display().to_string(),
    };
    let listener = Listener::bind(kind, &listen)?;
    let addr = listener.addr()?;
    let role = match kind {
        Kind::Tcp => "tcp-echo",
        Kind::Unix => "unix-echo",
    };
    let mut child = peer_command(role, &[&addr, &size.to_string()])?
        .spawn()
        .context("starting the echo peer")?;
    let mut s = listener.accept()?;
    if kind == Kind::Unix {
        let _ = std::fs::remove_file(&sock);
    }
    let mut h = Histogram::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut msg = vec![7u8; size];
    let mut reply = vec![0u8; size];
    for i in 0..rounds + rounds / 10 {
        msg[0] = i as u8;
        let t = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut reply)?;
        let ns = t.elapsed().as_nanos() as u64;
        anyhow::ensure!(reply == msg, "echo mismatch");
        if i >= rounds / 10 {
            h.record(ns.max(1))?;
        }
    }
    drop(s);
    anyhow::ensure!(child.wait()?.success(), "the echo peer failed");
    Ok(h)
}
