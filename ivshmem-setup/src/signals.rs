//! Stopping a polling loop on SIGINT or SIGTERM, without signal handlers.
//!
//! The signals are blocked in the calling thread and read from a
//! non-blocking `signalfd`, which the loop checks now and then.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Reports SIGINT and SIGTERM once they arrive.
#[derive(Debug)]
pub struct StopSignals {
    fd: SignalFd,
}

impl StopSignals {
    /// Blocks SIGINT and SIGTERM in the calling thread (call it before
    /// starting other threads, which inherit the mask) and starts watching
    /// for them.
    pub fn install() -> nix::Result<StopSignals> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        set.thread_block()?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(StopSignals { fd })
    }

    /// The signal that arrived, if any (one system call).
    pub fn received(&self) -> Option<Signal> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            _ => None,
        }
    }
}
