//! The worker as QEMU's ivshmem server: doorbells from guests in VMs.
//!
//! A guest in a VM shares the region's memory but not the worker's kernel,
//! so it cannot wake a worker thread with a futex. With an
//! `ivshmem-doorbell` device it can ring instead: QEMU connects to a UNIX
//! socket per VM (`-chardev socket,path=<region>.sock,id=ID -device
//! ivshmem-doorbell,chardev=ID,vectors=1`), where the worker speaks QEMU's
//! ivshmem server protocol (QEMU's `docs/specs/ivshmem-spec.rst`): every
//! message is a little-endian `i64`, some with a file descriptor attached:
//!
//! 1. the protocol version, 0;
//! 2. the VM's own peer id (1, 2, … per connection);
//! 3. -1 with the region's file descriptor: QEMU maps it as the device's
//!    memory BAR;
//! 4. the worker's peer id (0) with the worker's eventfd for vector 0: a
//!    guest's write of `(0 << 16) | 0` to the device's Doorbell register
//!    makes QEMU signal it;
//! 5. the VM's own id with an eventfd for its vector 0 (QEMU turns a
//!    signal on it into an interrupt; kept for notifications to the guest,
//!    which need a guest driver for the device's MSI-X vector).
//!
//! While a QEMU is connected, the worker publishes its peer id in the
//! region ([`transport::Region::set_worker_doorbell`]); a guest that finds it and
//! a served device (`IVPosition` not -1) rings after publishing into a
//! command ring whose worker thread announced that it sleeps. One thread
//! waits for every region's doorbell, for new connections and for QEMU
//! going away, in one place: an io_uring of poll requests. A doorbell wakes
//! every thread of the worker that sleeps on one of the region's bells
//! ([`transport::Region::ring_all`]); those threads are in the executors,
//! which restart without the VM noticing: the server lives in the
//! supervisor, as the region's lease does.

use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use anyhow::Context;
use io_uring::{IoUring, opcode, types};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use transport::Region;

/// The worker's peer id on every VM's ivshmem server.
pub const WORKER_PEER: u16 = 0;
/// The ivshmem server protocol version QEMU expects.
const PROTOCOL_VERSION: i64 = 0;

/// What an io_uring completion is about: the kind in the high half of its
/// user data, an index in the low half.
const STOP: u64 = 0;
const BELL: u64 = 1;
const ACCEPT: u64 = 2;
const CLIENT: u64 = 3;

fn tag(kind: u64, index: usize) -> u64 {
    (kind << 32) | index as u64
}

/// The UNIX socket on which the worker serves `region`'s VM as its
/// ivshmem server: the region's path with `.sock` appended.
pub fn socket_path(region: &Path) -> PathBuf {
    let mut s = region.as_os_str().to_owned();
    s.push(".sock");
    PathBuf::from(s)
}

/// The ivshmem servers of a set of regions and the thread that waits for
/// their doorbells; stopped (sockets removed, the regions told that the
/// worker takes no more doorbells) on [`Doorbells::stop`] or drop.
pub struct Doorbells {
    stop: std::sync::Arc<EventFd>,
    thread: Option<std::thread::JoinHandle<()>>,
    sockets: Vec<PathBuf>,
    regions: Vec<Region>,
}

/// One region's server.
struct Served {
    region: Region,
    listener: UnixListener,
    /// Signalled by QEMU when a guest of the VM rings the worker.
    bell: EventFd,
    /// The region's file, handed to QEMU.
    file: std::fs::File,
}

/// A connected QEMU.
struct Client {
    served: usize,
    peer: u16,
    stream: UnixStream,
    /// The VM's own eventfd (vector 0), kept open while it is connected.
    _own: EventFd,
}

impl Doorbells {
    /// Listens on each region's socket ([`socket_path`]; a stale socket
    /// file is replaced: the caller holds the region's lease) and starts
    /// the waiting thread.
    pub fn start(regions: &[Region]) -> anyhow::Result<Doorbells> {
        let mut served = Vec::new();
        let mut sockets = Vec::new();
        for region in regions {
            let path = socket_path(region.path());
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path)
                .with_context(|| format!("listening on {}", path.display()))?;
            listener.set_nonblocking(true)?;
            sockets.push(path);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(region.path())
                .with_context(|| format!("opening {}", region.path().display()))?;
            served.push(Served {
                region: region.clone(),
                listener,
                bell: EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?,
                file,
            });
        }
        let stop = std::sync::Arc::new(EventFd::from_flags(
            EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC,
        )?);
        let ring = IoUring::new(64).context("creating an io_uring")?;
        for path in &sockets {
            tracing::info!(socket = %path.display(), "serving as the VM's ivshmem server (doorbells)");
        }
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("ava-doorbells".into())
                .spawn(move || {
                    if let Err(e) = wait(ring, &served, &stop) {
                        tracing::error!("the doorbell thread stopped: {e:#}");
                    }
                })?
        };
        Ok(Doorbells {
            stop,
            thread: Some(thread),
            sockets,
            regions: regions.to_vec(),
        })
    }

    /// Stops the thread, closes every connection, removes the sockets.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        let Some(t) = self.thread.take() else {
            return;
        };
        let _ = self.stop.write(1);
        let _ = t.join();
        for r in &self.regions {
            r.set_worker_doorbell(None);
        }
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}

impl Drop for Doorbells {
    fn drop(&mut self) {
        self.shut();
    }
}

/// Queues a one-shot poll of `fd` for readability, tagged `user_data`.
fn poll(ring: &mut IoUring, fd: BorrowedFd<'_>, user_data: u64) -> std::io::Result<()> {
    let entry = opcode::PollAdd::new(types::Fd(fd.as_raw_fd()), nix::libc::POLLIN as u32)
        .build()
        .user_data(user_data);
    // SAFETY: a poll request refers to no memory of ours, only to `fd`,
    // which stays open while the ring exists: every fd polled belongs to
    // `served`, `stop` or `clients` in `wait`, and each outlives the ring
    // (dropped first) or, for a client, is closed only after its poll
    // completed.
    while unsafe { ring.submission().push(&entry) }.is_err() {
        ring.submit()?;
    }
    Ok(())
}

/// The waiting thread: doorbells, new connections, QEMU going away, and
/// the stop signal, all from one io_uring.
fn wait(mut ring: IoUring, served: &[Served], stop: &EventFd) -> anyhow::Result<()> {
    let mut clients: HashMap<usize, Client> = HashMap::new();
    let mut next_client = 0usize;
    let mut next_peer = WORKER_PEER + 1;
    poll(&mut ring, stop.as_fd(), tag(STOP, 0))?;
    for (i, s) in served.iter().enumerate() {
        poll(&mut ring, s.bell.as_fd(), tag(BELL, i))?;
        poll(&mut ring, s.listener.as_fd(), tag(ACCEPT, i))?;
    }
    loop {
        ring.submit_and_wait(1)?;
        let done: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (user_data, result) in done {
            let (kind, index) = (user_data >> 32, (user_data & 0xffff_ffff) as usize);
            if result < 0 && -result != nix::libc::ECANCELED {
                tracing::warn!(kind, index, "a doorbell poll failed: errno {}", -result);
            }
            match kind {
                STOP => return Ok(()),
                BELL => {
                    let s = &served[index];
                    // Cleared before the bells are rung, so that a ring
                    // that comes meanwhile signals the eventfd again.
                    let _ = s.bell.read();
                    tracing::trace!(region = %s.region.path().display(), "doorbell");
                    s.region.ring_all();
                    poll(&mut ring, s.bell.as_fd(), user_data)?;
                }
                ACCEPT => {
                    let s = &served[index];
                    while let Ok((stream, _)) = s.listener.accept() {
                        let peer = next_peer;
                        next_peer = next_peer.checked_add(1).unwrap_or(WORKER_PEER + 1);
                        // Guests ring only while a QEMU of this worker's
                        // is connected: after a restart of the worker, a
                        // QEMU still holds the old eventfd until it
                        // reconnects, and its guests are polled meanwhile.
                        s.region.set_worker_doorbell(Some(WORKER_PEER));
                        match greet(&stream, s, peer) {
                            Ok(own) => {
                                tracing::info!(region = %s.region.path().display(), peer, "a VM connected for doorbells");
                                let c = next_client;
                                next_client += 1;
                                poll(&mut ring, stream.as_fd(), tag(CLIENT, c))?;
                                clients.insert(
                                    c,
                                    Client {
                                        served: index,
                                        peer,
                                        stream,
                                        _own: own,
                                    },
                                );
                            }
                            Err(e) => {
                                tracing::warn!(region = %s.region.path().display(), "a VM's ivshmem connection failed: {e:#}");
                                if !clients.values().any(|c| c.served == index) {
                                    s.region.set_worker_doorbell(None);
                                }
                            }
                        }
                    }
                    poll(&mut ring, s.listener.as_fd(), user_data)?;
                }
                CLIENT => {
                    // QEMU sends nothing: readable means it went away (or
                    // broke the protocol); either way the VM is done.
                    if let Some(c) = clients.remove(&index) {
                        let _ = c.stream.shutdown(std::net::Shutdown::Both);
                        if !clients.values().any(|o| o.served == c.served) {
                            served[c.served].region.set_worker_doorbell(None);
                        }
                        tracing::info!(
                            region = %served[c.served].region.path().display(),
                            peer = c.peer,
                            "a VM's ivshmem connection closed"
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

/// Sends QEMU's ivshmem setup to a new connection: version, its peer id,
/// the region's memory, the worker's doorbell, and its own vector's
/// eventfd (returned: it stays open while the VM is connected).
fn greet(stream: &UnixStream, s: &Served, peer: u16) -> anyhow::Result<EventFd> {
    stream.set_nonblocking(false)?;
    let own = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
    send(stream, PROTOCOL_VERSION, None)?;
    send(stream, i64::from(peer), None)?;
    send(stream, -1, Some(s.file.as_fd()))?;
    send(stream, i64::from(WORKER_PEER), Some(s.bell.as_fd()))?;
    send(stream, i64::from(peer), Some(own.as_fd()))?;
    Ok(own)
}

/// One protocol message: `value` as a little-endian i64, with `fd`
/// attached (SCM_RIGHTS) if given.
fn send(stream: &UnixStream, value: i64, fd: Option<BorrowedFd<'_>>) -> anyhow::Result<()> {
    let bytes = value.to_le_bytes();
    let iov = [IoSlice::new(&bytes)];
    let fds: Vec<std::os::fd::RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
    let cmsg: Vec<ControlMessage<'_>> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&fds)]
    };
    let n = sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    anyhow::ensure!(n == bytes.len(), "short write of an ivshmem message");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSliceMut;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use nix::sys::socket::{ControlMessageOwned, recvmsg};
    use transport::RegionConfig;

    /// Reads one message as QEMU does: the value and the fd attached.
    fn recv(stream: &UnixStream) -> (i64, Option<OwnedFd>) {
        let mut bytes = [0u8; 8];
        let mut iov = [IoSliceMut::new(&mut bytes)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        assert_eq!(msg.bytes, 8);
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel just gave us this descriptor; nothing
                // else owns it.
                fd = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
            }
        }
        (i64::from_le_bytes(bytes), fd)
    }

    /// What QEMU sees connecting to the worker's ivshmem server, and what
    /// a guest's doorbell does: the setup messages in QEMU's order with the
    /// region's memory and the worker's eventfd; signalling that eventfd
    /// (as QEMU does on a guest's Doorbell write) wakes a thread sleeping
    /// on a channel's command bell; the region says the worker takes
    /// doorbells while served, and the socket goes on stop.
    #[test]
    fn qemu_gets_the_region_and_a_doorbell_that_wakes_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm");
        let config = RegionConfig {
            channels: 2,
            arena_size: 8192,
            ..RegionConfig::default()
        };
        let region = Region::create(&path, &config).unwrap();
        let doorbells = Doorbells::start(std::slice::from_ref(&region)).unwrap();
        // No QEMU connected: guests must not ring.
        assert_eq!(region.worker_doorbell(), None);
        let qemu = UnixStream::connect(socket_path(&path)).unwrap();
        assert_eq!(recv(&qemu).0, PROTOCOL_VERSION);
        let (own_id, none) = recv(&qemu);
        assert_eq!(own_id, 1);
        assert!(none.is_none());
        let (minus_one, memory) = recv(&qemu);
        assert_eq!(minus_one, -1);
        let memory = std::fs::File::from(memory.expect("the region's fd"));
        assert_eq!(
            memory.metadata().unwrap().len(),
            std::fs::metadata(&path).unwrap().len()
        );
        let (worker, bell) = recv(&qemu);
        assert_eq!(worker, i64::from(WORKER_PEER));
        let bell = bell.expect("the worker's eventfd");
        let (own, own_fd) = recv(&qemu);
        assert_eq!(own, own_id);
        assert!(own_fd.is_some());
        assert_eq!(region.worker_doorbell(), Some(WORKER_PEER));

        // A worker thread sleeps on channel 0's command bell (as an idle
        // channel's thread does); the "guest" rings the doorbell.
        let guest = region.claim().unwrap();
        let index = guest.index();
        let worker_end = region.attach(index).unwrap().unwrap();
        let sleeper = std::thread::spawn(move || {
            let mut rx = worker_end.rx;
            let t = Instant::now();
            rx.sleep(Duration::from_secs(20));
            t.elapsed()
        });
        std::thread::sleep(Duration::from_millis(200));
        // What a producer in the VM does on finding the consumer asleep:
        // marks the bell rung, then writes the Doorbell register (QEMU
        // signals the worker's eventfd).
        let shm = transport::Shm::map(&path, None).unwrap();
        let word =
            shm.atomic_u32(region.header().channel(index).base + transport::layout::CH_CMD_BELL);
        while word.load(Ordering::SeqCst) != transport::bell::SLEEPING {
            std::thread::sleep(Duration::from_millis(1));
        }
        word.store(transport::bell::RUNG, Ordering::SeqCst);
        nix::unistd::write(&bell, &1u64.to_ne_bytes()).unwrap();
        let slept = sleeper.join().unwrap();
        assert!(
            slept < Duration::from_secs(10),
            "the doorbell did not wake the sleeping thread ({slept:?})"
        );
        drop(guest);
        // QEMU goes away: guests stop ringing.
        drop(qemu);
        let deadline = Instant::now() + Duration::from_secs(10);
        while region.worker_doorbell().is_some() {
            assert!(
                Instant::now() < deadline,
                "still taking doorbells without QEMU"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        doorbells.stop();
        assert!(!socket_path(&path).exists());
    }
}
