//! A single-producer / single-consumer ring of variable-length messages in
//! shared memory.
//!
//! The ring's data area is a power of two in size. Head and tail are
//! free-running `u64` byte counters on separate cache lines: the producer
//! owns the head, the consumer the tail. The producer keeps a cached copy of
//! the tail (as `rtrb` does) and reads the shared one only when its cached
//! view says the ring is full.
//!
//! A message is an 8-byte record header — the payload length in the low half
//! and its bitwise complement in the high half, so never zero — followed by
//! the payload, padded to 8 bytes. Records are 8-aligned, so a header never
//! straddles the end of the data area; a payload may, and is then copied in
//! two pieces.
//!
//! The consumer does not poll the head: it polls the header word at its own
//! position, which the producer stores last, with Release, after the payload.
//! The notification thus travels in the same cache line as the first bytes
//! of the message, and a round trip costs one cache-line transfer per
//! direction, as a bare ping-pong does. This works because, before it
//! publishes a record, the producer zeroes the header word where the *next*
//! record will start: the word at the consumer's position is therefore always
//! either zero (nothing yet) or the header of the next record, never a
//! leftover of the previous lap. That word is reserved, so a ring of `size`
//! bytes carries messages of up to `size - 16` bytes. (The head counter is
//! still published, for inspection.)
//!
//! The consumer treats the whole ring as hostile: it copies a record out
//! before looking at it and checks every length, reporting
//! [`RingError::Corrupt`] instead of trusting it.
//!
//! The ends of a channel's rings are made for one ownership of the channel
//! (an [`Owner`]: the channel's state word and the value it holds while that
//! ownership lasts). A consumer checks the word after copying each record
//! out, and a producer before writing and before publishing: once the
//! channel is released or reclaimed, a stale end gets
//! [`RingError::Disconnected`] and never delivers a message of the next
//! owner, nor writes into the next owner's ring. The word sits in a line
//! that is written only when the channel changes hands, so the check is a
//! load that hits the cache.

use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::Duration;

use crate::RingError;
use crate::bell::Bell;
use crate::shm::{RingMem, Shm};
use crate::wait::{WaitStrategy, retry};

/// Size of a record header.
pub const RECORD_HEADER: usize = 8;

/// Bytes of a cache line.
const CACHE_LINE: u64 = 64;

/// The ownership a ring end was made for: the channel's state word and the
/// value it holds while that ownership lasts.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    /// Keeps the mapping alive.
    _shm: Shm,
    /// The channel's state word (validated to lie in the mapping).
    word: *const AtomicU64,
    /// The value of the word while the ownership lasts.
    expected: u64,
}

// SAFETY: the pointer lies in the mapping kept alive by `_shm` and is only
// used for atomic loads, as `Shm` itself (which is Send + Sync) does.
unsafe impl Send for Owner {}
// SAFETY: as for `Send`.
unsafe impl Sync for Owner {}

impl Owner {
    /// The ownership under which the word at `offset` of `shm` holds
    /// `expected`. Panics if the word lies outside the mapping.
    pub(crate) fn new(shm: &Shm, offset: usize, expected: u64) -> Owner {
        Owner {
            word: shm.atomic_u64(offset),
            expected,
            _shm: shm.clone(),
        }
    }

    /// Whether the ownership still lasts.
    #[inline(always)]
    fn holds(&self) -> bool {
        // SAFETY: validated in `new`; the mapping outlives `self`.
        unsafe { &*self.word }.load(Ordering::Acquire) == self.expected
    }
}

/// Whether an end made for `owner` (none: a bare ring) may still use its ring.
#[inline(always)]
fn owned(owner: &Option<Owner>) -> bool {
    owner.as_ref().is_none_or(Owner::holds)
}

/// Where a ring lives inside a mapping.
#[derive(Debug, Clone, Copy)]
pub struct RingLayout {
    /// Offset of the producer's counter.
    pub head: usize,
    /// Offset of the consumer's counter.
    pub tail: usize,
    /// Offset of the data area.
    pub data: usize,
    /// Size of the data area (a power of two).
    pub size: usize,
    /// Offset of the ring's doorbell word, if it has one (see
    /// [`crate::bell`]).
    pub bell: Option<usize>,
}

impl RingLayout {
    /// Largest payload this ring can carry.
    pub fn max_message(&self) -> usize {
        max_message(self.size)
    }
}

/// Largest payload of a ring of `size` bytes: its own header and the next
/// record's (zeroed before publishing) must fit beside it.
#[inline]
fn max_message(size: usize) -> usize {
    size - 2 * RECORD_HEADER
}

#[inline]
fn padded(len: usize) -> usize {
    (len + 7) & !7
}

/// The header word of a record of `len` bytes: never zero.
#[inline]
fn record_header(len: usize) -> u64 {
    let len = len as u32;
    (u64::from(!len) << 32) | u64::from(len)
}

/// Whether counters found when an end is created cannot be those of a ring
/// in use: the consumer's ahead of the producer's, further behind than the
/// ring holds, or so large that advancing them could overflow (a ring that
/// moved 2^62 bytes has not been seen: a peer wrote them). Such an end
/// refuses every operation as corrupt, since its positions would overflow
/// or describe bytes that were never written.
fn inconsistent(head: u64, tail: u64, size: usize) -> bool {
    tail > head || head - tail > size as u64 || head > 1 << 62
}

/// The writing end of a ring. Exactly one may exist per ring.
#[derive(Debug)]
pub struct Producer {
    mem: RingMem,
    size: usize,
    head: u64,
    cached_tail: u64,
    /// The channel ownership this end serves (none: a bare ring).
    owner: Option<Owner>,
    /// The consumer's doorbell, rung after publishing when it sleeps.
    bell: Option<Bell>,
    /// Whether the last message published woke the consumer.
    woke: bool,
    /// The counters found at creation were not those of a ring in use
    /// (see [`inconsistent`]): every send fails as corrupt, before the
    /// free space is ever computed from them.
    poisoned: bool,
}

impl Producer {
    /// A producer for a ring whose counters currently read `head`/`tail`.
    ///
    /// Callers that create a fresh ring zero both counters first.
    pub(crate) fn new(shm: Shm, layout: RingLayout, owner: Option<Owner>) -> Producer {
        let mem = RingMem::new(&shm, layout.data, layout.size, layout.head, layout.tail);
        let head = mem.head().load(Ordering::Acquire);
        let tail = mem.tail().load(Ordering::Acquire);
        let poisoned = inconsistent(head, tail, layout.size);
        Producer {
            poisoned,
            bell: layout.bell.map(|b| {
                // Registered before the first message (see `bell`).
                let _ = crate::bell::asymmetric();
                Bell::new(&shm, b)
            }),
            woke: false,
            mem,
            size: layout.size,
            head,
            cached_tail: tail,
            owner,
        }
    }

    /// Largest message that fits.
    pub fn max_message(&self) -> usize {
        max_message(self.size)
    }

    /// Bytes free as of the last look at the consumer's counter.
    #[inline]
    fn free_cached(&self) -> usize {
        self.size - (self.head - self.cached_tail) as usize
    }

    /// Refreshes the cached tail. The consumer is untrusted: its counter must
    /// not go backwards nor run ahead of what was published.
    fn refresh(&mut self) -> Result<(), RingError> {
        let tail = self.mem.tail().load(Ordering::Acquire);
        if tail < self.cached_tail || tail > self.head {
            return Err(RingError::Corrupt("consumer counter out of range"));
        }
        self.cached_tail = tail;
        Ok(())
    }

    /// Sends one message made of the concatenation of `parts`, if it fits now.
    ///
    /// Returns `Ok(false)` when the ring is too full at the moment.
    #[inline]
    pub fn try_send_parts(&mut self, parts: &[&[u8]]) -> Result<bool, RingError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if !self.reserve(len)? {
            return Ok(false);
        }
        let mut pos = self.head + RECORD_HEADER as u64;
        for part in parts {
            self.mem.write(pos, part);
            pos += part.len() as u64;
        }
        self.publish(len)?;
        Ok(true)
    }

    /// Checks that a message of `len` bytes fits now (refreshing the
    /// consumer's counter if the cached one says it does not).
    #[inline]
    fn reserve(&mut self, len: usize) -> Result<bool, RingError> {
        if !owned(&self.owner) {
            return Err(RingError::Disconnected);
        }
        if self.poisoned {
            return Err(RingError::Corrupt("ring counters out of range"));
        }
        if len > self.max_message() {
            return Err(RingError::TooLarge {
                len,
                max: self.max_message(),
            });
        }
        // One more word: the next record's header, zeroed in `publish`.
        let need = 2 * RECORD_HEADER + padded(len);
        if self.free_cached() < need {
            self.refresh()?;
            if self.free_cached() < need {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Publishes the record of `len` bytes whose payload is written: zeroes
    /// the header word where the next record will start (it must read as
    /// empty before this record becomes visible), then stores the header,
    /// last: the consumer polls it. Publishes nothing when the channel
    /// changed hands while the payload was written.
    #[inline]
    fn publish(&mut self, len: usize) -> Result<(), RingError> {
        if !owned(&self.owner) {
            return Err(RingError::Disconnected);
        }
        let need = (RECORD_HEADER + padded(len)) as u64;
        self.mem.word(self.head + need).store(0, Ordering::Relaxed);
        match &self.bell {
            None => self
                .mem
                .word(self.head)
                .store(record_header(len), Ordering::Release),
            Some(bell) if crate::bell::asymmetric() && !bell.is_remote() => {
                // The consumer's barrier on its way to sleep orders this
                // store before the bell's load (see `bell`): the busy path
                // pays a load.
                self.mem
                    .word(self.head)
                    .store(record_header(len), Ordering::Release);
                std::sync::atomic::compiler_fence(Ordering::SeqCst);
                self.woke = bell.ring();
            }
            Some(bell) => {
                // Sequentially consistent, as the consumer's announcement
                // and re-check are: either it sees this record or the bell
                // is seen sleeping (a swap: a full barrier on x86, which a
                // store followed by a load would need anyway).
                self.mem
                    .word(self.head)
                    .swap(record_header(len), Ordering::SeqCst);
                self.woke = bell.ring();
            }
        }
        self.head += need;
        self.mem.head().store(self.head, Ordering::Relaxed);
        Ok(())
    }

    /// Rings the consumer through an ivshmem `doorbell` from now on (this
    /// end is in a VM), instead of with a futex wake.
    pub(crate) fn ring_through(&mut self, shm: &Shm, doorbell: crate::doorbell::Doorbell) {
        if let Some(b) = &self.bell {
            self.bell = Some(Bell::through(shm, b.offset(), doorbell));
        }
    }

    /// Whether the last message published had to wake the consumer (which
    /// was sleeping on the bell); cleared by the call. A producer that woke
    /// its consumer does better to yield than to spin while waiting for it:
    /// the kernel tends to run the woken thread on the waker's core.
    pub fn woke_consumer(&mut self) -> bool {
        std::mem::take(&mut self.woke)
    }

    /// Sends `msg` if it fits now; `Ok(false)` when the ring is full.
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<bool, RingError> {
        if !self.reserve(msg.len())? {
            return Ok(false);
        }
        self.mem.write(self.head + RECORD_HEADER as u64, msg);
        self.publish(msg.len())?;
        Ok(true)
    }

    /// Sends a message, waiting for space with `wait`; gives up with
    /// [`RingError::Timeout`] after `timeout`, if one is given.
    pub fn send_parts(
        &mut self,
        parts: &[&[u8]],
        wait: &WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<(), RingError> {
        retry(wait, timeout, || self.try_send_parts(parts))
    }

    /// [`Producer::send_parts`] with a single part.
    #[inline]
    pub fn send(
        &mut self,
        msg: &[u8],
        wait: &WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<(), RingError> {
        retry(wait, timeout, || self.try_send(msg))
    }
}

/// The reading end of a ring. Exactly one may exist per ring.
#[derive(Debug)]
pub struct Consumer {
    mem: RingMem,
    size: usize,
    tail: u64,
    /// The counters found at creation were not those of a ring in use
    /// (see [`inconsistent`]): every receive fails as corrupt.
    poisoned: bool,
    /// The channel ownership this end serves (none: a bare ring).
    owner: Option<Owner>,
    /// This end's doorbell, which the producer rings when it sleeps.
    bell: Option<Bell>,
}

impl Consumer {
    pub(crate) fn new(shm: Shm, layout: RingLayout, owner: Option<Owner>) -> Consumer {
        let mem = RingMem::new(&shm, layout.data, layout.size, layout.head, layout.tail);
        let tail = mem.tail().load(Ordering::Acquire);
        let poisoned = inconsistent(mem.head().load(Ordering::Acquire), tail, layout.size);
        Consumer {
            poisoned,
            bell: layout.bell.map(|b| Bell::new(&shm, b)),
            mem,
            size: layout.size,
            tail,
            owner,
        }
    }

    /// Sleeps until the producer publishes (and rings), or `timeout`:
    /// announces on the bell, re-checks the ring, and sleeps only if it is
    /// still empty. Returns false at once, without sleeping, when the ring
    /// has no bell. Only for a producer that rings (of the same kernel).
    pub fn sleep(&mut self, timeout: Duration) -> bool {
        let Some(bell) = &self.bell else {
            return false;
        };
        bell.announce();
        if self.mem.word(self.tail).load(Ordering::SeqCst) != 0 {
            bell.awake();
        } else {
            bell.sleep(timeout);
        }
        true
    }

    /// Largest message the ring can carry.
    pub fn max_message(&self) -> usize {
        max_message(self.size)
    }

    /// Whether a message is ready.
    pub fn has_message(&mut self) -> Result<bool, RingError> {
        Ok(self.mem.word(self.tail).load(Ordering::Acquire) != 0)
    }

    /// Receives the next message into `out` (replacing its contents), if one
    /// is ready. Returns `Ok(false)` when the ring is empty.
    #[inline]
    pub fn try_recv(&mut self, out: &mut Vec<u8>) -> Result<bool, RingError> {
        if self.poisoned {
            return Err(RingError::Corrupt("ring counters out of range"));
        }
        let header = self.mem.word(self.tail).load(Ordering::Acquire);
        if header == 0 {
            // A message longer than the rest of this line continues on the
            // next one: keep that line coming while waiting, so that both
            // arrive at once rather than one after the other.
            self.mem.prefetch(self.tail + CACHE_LINE);
            return Ok(false);
        }
        let len = header as u32;
        if (header >> 32) as u32 != !len {
            return Err(RingError::Corrupt("record header check failed"));
        }
        let len = len as usize;
        if len > self.max_message() {
            return Err(RingError::Corrupt("record longer than the ring"));
        }
        // Resizing without clearing first: same-sized messages cost no memset.
        out.resize(len, 0);
        self.mem.read(self.tail + RECORD_HEADER as u64, out);
        // The ownership is checked after the copy (as a seqlock reader
        // checks its sequence): a record of the next owner is published
        // after that owner's claim, so reading it means reading the changed
        // word here; and a reset that overwrote what was copied had changed
        // the word before it started.
        fence(Ordering::Acquire);
        if !owned(&self.owner) {
            out.clear();
            return Err(RingError::Disconnected);
        }
        self.tail += (RECORD_HEADER + padded(len)) as u64;
        self.mem.tail().store(self.tail, Ordering::Release);
        Ok(true)
    }

    /// Receives the next message, waiting with `wait`; [`RingError::Timeout`]
    /// after `timeout`, if one is given.
    #[inline]
    pub fn recv(
        &mut self,
        out: &mut Vec<u8>,
        wait: &WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<(), RingError> {
        retry(wait, timeout, || self.try_recv(out))
    }
}

/// Resets a ring to empty: counters and data zeroed. Only for a ring that no
/// endpoint uses (a free channel).
pub(crate) fn reset(shm: &Shm, layout: &RingLayout) {
    shm.zero(layout.data, layout.size);
    shm.atomic_u64(layout.head).store(0, Ordering::Release);
    shm.atomic_u64(layout.tail).store(0, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn ring(size: usize) -> (tempfile::NamedTempFile, Producer, Consumer, Shm) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let shm = Shm::map(file.path(), Some((1024 + size) as u64)).unwrap();
        let layout = RingLayout {
            head: 0,
            tail: 128,
            data: 1024,
            size,
            bell: None,
        };
        let p = Producer::new(shm.clone(), layout, None);
        let c = Consumer::new(shm.clone(), layout, None);
        (file, p, c, shm)
    }

    #[test]
    fn roundtrip_and_empty() {
        let (_f, mut p, mut c, _) = ring(256);
        let mut out = Vec::new();
        assert_eq!(c.try_recv(&mut out), Ok(false));
        assert_eq!(p.try_send(b"hello"), Ok(true));
        assert_eq!(p.try_send_parts(&[b"ab", b"", b"cd"]), Ok(true));
        assert_eq!(c.try_recv(&mut out), Ok(true));
        assert_eq!(out, b"hello");
        assert_eq!(c.try_recv(&mut out), Ok(true));
        assert_eq!(out, b"abcd");
        assert_eq!(c.try_recv(&mut out), Ok(false));
    }

    #[test]
    fn full_and_too_large() {
        let (_f, mut p, mut c, _) = ring(64);
        assert_eq!(p.max_message(), 48);
        assert!(matches!(
            p.try_send(&[0; 49]),
            Err(RingError::TooLarge { .. })
        ));
        assert_eq!(p.try_send(&[1; 48]), Ok(true));
        assert_eq!(p.try_send(&[]), Ok(false));
        let mut out = Vec::new();
        assert_eq!(c.try_recv(&mut out), Ok(true));
        assert_eq!(out, [1; 48]);
        assert_eq!(p.try_send(&[]), Ok(true));
    }

    #[test]
    fn zero_length_messages_are_messages() {
        let (_f, mut p, mut c, _) = ring(64);
        for _ in 0..7 {
            assert_eq!(p.try_send(&[]), Ok(true));
        }
        assert_eq!(p.try_send(&[]), Ok(false));
        let mut out = vec![9];
        for _ in 0..7 {
            assert_eq!(c.try_recv(&mut out), Ok(true));
            assert!(out.is_empty());
        }
        assert_eq!(c.try_recv(&mut out), Ok(false));
    }

    #[test]
    fn corrupt_headers_and_counters_are_errors() {
        let (_f, mut p, mut c, shm) = ring(256);
        p.try_send(b"12345678").unwrap();
        // A damaged record header.
        shm.write(1024, &[0xff; 4]);
        assert!(matches!(
            c.try_recv(&mut Vec::new()),
            Err(RingError::Corrupt(_))
        ));
        // A consistent header with a length beyond the ring.
        shm.write(1024, &1000u32.to_le_bytes());
        shm.write(1028, &(!1000u32).to_le_bytes());
        assert!(matches!(
            c.try_recv(&mut Vec::new()),
            Err(RingError::Corrupt(_))
        ));
        // A consumer counter that runs ahead of the producer.
        shm.atomic_u64(128).store(1 << 20, Ordering::Release);
        let results: Vec<_> = (0..4).map(|_| p.try_send(&[0; 100])).collect();
        assert!(results.contains(&Err(RingError::Corrupt("consumer counter out of range"))));
    }

    #[test]
    fn stale_header_lookalikes_from_earlier_laps_are_never_read() {
        // Payloads made only of valid-looking record headers, in sizes that
        // shift record boundaries from lap to lap: a consumer that read a
        // leftover word would see a phantom message.
        let (_f, mut p, mut c, _) = ring(128);
        let fake: Vec<u8> = (0..16)
            .flat_map(|_| record_header(8).to_le_bytes())
            .collect();
        let mut out = Vec::new();
        for round in 0..200usize {
            let len = 8 + (round * 24) % 96;
            assert_eq!(p.try_send(&fake[..len]), Ok(true), "round {round}");
            assert_eq!(c.try_recv(&mut out), Ok(true));
            assert_eq!(out, &fake[..len]);
            assert_eq!(c.try_recv(&mut out), Ok(false), "phantom in round {round}");
        }
    }

    proptest! {
        /// The ring behaves as a bounded FIFO of byte strings whose capacity
        /// is counted in padded records.
        #[test]
        fn ring_matches_model(
            size_log in 6u32..10,
            ops in prop::collection::vec(
                prop_oneof![
                    (0usize..300).prop_map(Some),
                    Just(None),
                ],
                1..400,
            ),
        ) {
            let size = 1usize << size_log;
            let (_f, mut p, mut c, _) = ring(size);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut used = 0usize;
            let mut counter = 0u8;
            let mut out = Vec::new();
            for op in ops {
                match op {
                    Some(len) => {
                        let msg: Vec<u8> = (0..len).map(|i| counter.wrapping_add(i as u8)).collect();
                        counter = counter.wrapping_add(1);
                        let need = RECORD_HEADER + padded(len);
                        match p.try_send(&msg) {
                            Err(RingError::TooLarge { .. }) => prop_assert!(len > size - 2 * RECORD_HEADER),
                            Ok(true) => {
                                prop_assert!(used + need + RECORD_HEADER <= size);
                                used += need;
                                model.push_back(msg);
                            }
                            Ok(false) => prop_assert!(used + need + RECORD_HEADER > size),
                            Err(e) => prop_assert!(false, "unexpected {e}"),
                        }
                    }
                    None => {
                        let got = c.try_recv(&mut out).unwrap();
                        match model.pop_front() {
                            Some(m) => {
                                prop_assert!(got);
                                prop_assert_eq!(&out, &m);
                                used -= RECORD_HEADER + padded(m.len());
                            }
                            None => prop_assert!(!got),
                        }
                    }
                }
            }
            while let Some(m) = model.pop_front() {
                prop_assert!(c.try_recv(&mut out).unwrap());
                prop_assert_eq!(&out, &m);
            }
            prop_assert!(!c.try_recv(&mut out).unwrap());
        }
    }
}
