//! The lock of a connection's channel, taken by every call.
//!
//! A call holds it while it writes its message to the ring and, for a
//! synchronous call, while it waits for the reply. `std::sync::Mutex`
//! releases with an atomic exchange, a full barrier: after an asynchronous
//! call it stalls the caller until the message's stores have reached the
//! worker's core (the ring's cache lines are the worker's), about 100 ns
//! on the critical path of the next call. This lock releases with a plain
//! release store, so the stores drain while the caller goes on. A channel
//! is one thread's, except when a process has more threads than
//! channels: a thread that finds the lock taken spins briefly, then
//! yields, then sleeps in short steps.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A lock around `T`, released without a barrier (see the module).
#[derive(Debug)]
pub struct ChannelLock<T> {
    /// Whether a [`ChannelGuard`] exists (true from a successful acquire
    /// until the guard's release store).
    locked: AtomicBool,
    /// Accessed only through a [`ChannelGuard`].
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and at most one guard
// exists at a time (`locked`), so sharing the lock shares `T` between
// threads one at a time, as a mutex does: `T: Send` suffices.
unsafe impl<T: Send> Sync for ChannelLock<T> {}

impl<T> ChannelLock<T> {
    /// A lock around `value`, free.
    pub const fn new(value: T) -> ChannelLock<T> {
        ChannelLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, waiting for it if another thread holds it.
    pub fn lock(&self) -> ChannelGuard<'_, T> {
        let mut tries = 0u32;
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            tries = tries.saturating_add(1);
            if tries < 64 {
                std::hint::spin_loop();
            } else if tries < 128 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<ChannelGuard<'_, T>> {
        (!self.locked.load(Ordering::Relaxed)
            && self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok())
        // `then`, not `then_some`: a guard made and dropped on failure
        // would release the holder's lock.
        .then(|| ChannelGuard { lock: self })
    }
}

/// Exclusive access to a [`ChannelLock`]'s value, until dropped.
#[derive(Debug)]
pub struct ChannelGuard<'a, T> {
    lock: &'a ChannelLock<T>,
}

impl<T> std::ops::Deref for ChannelGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (it set `locked`).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> std::ops::DerefMut for ChannelGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for ChannelGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::ChannelLock;
    use std::sync::Arc;

    #[test]
    fn threads_take_turns() {
        let lock = Arc::new(ChannelLock::new(0u64));
        let n = if cfg!(miri) { 100 } else { 10_000 };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..n {
                        *lock.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), 4 * n);
    }

    #[test]
    fn a_held_lock_is_not_taken_again() {
        let lock = ChannelLock::new(1);
        let g = lock.lock();
        assert!(lock.try_lock().is_none());
        drop(g);
        assert_eq!(*lock.try_lock().expect("free again"), 1);
    }
}
