//! The `ivshmem-doorbell` device's registers, as a guest in a VM sees them:
//! how a guest that does not share the worker's kernel (so cannot wake it
//! with a futex) rings it.
//!
//! QEMU's ivshmem device has a register BAR (BAR0, 256 bytes; in Linux,
//! `/sys/bus/pci/devices/<addr>/resource0` beside the memory's `resource2`):
//!
//! ```text
//! offset 0   IntrMask     (interrupts, unused here)
//! offset 4   IntrStatus   (unused here)
//! offset 8   IVPosition   this VM's peer id (read-only; -1 without a server)
//! offset 12  Doorbell     write (peer << 16) | vector: QEMU signals that
//!                         peer's eventfd for that vector
//! ```
//!
//! With `ivshmem-doorbell` and the worker as QEMU's ivshmem server, the
//! worker is peer 0 and publishes its peer id in the region
//! ([`crate::layout::WORKER_DOORBELL`]); the guest then writes the Doorbell
//! register after publishing into a ring whose consumer announced that it
//! sleeps, which costs the guest one VM exit on the edge from idle to busy
//! and nothing while the worker polls. `ivshmem-plain` has the same register
//! BAR, but no server: its IVPosition reads -1 and nothing is rung.

use std::path::{Path, PathBuf};

/// Offset of the IVPosition register.
const IV_POSITION: usize = 8;
/// Offset of the Doorbell register.
const DOORBELL: usize = 12;
/// Bytes of the register BAR that are mapped.
const REGISTERS: usize = 16;

/// The mapped registers of an ivshmem device.
#[derive(Debug)]
pub struct Registers {
    /// Invariant: at least [`REGISTERS`] bytes, page-aligned (a fresh
    /// mapping), mapped shared for reading and writing, for the life of
    /// `self`.
    map: memmap2::MmapRaw,
}

impl Registers {
    /// Maps the register BAR of the device whose memory BAR is `resource2`
    /// (its sibling `resource0`), if that device is an `ivshmem-doorbell`
    /// (it has BAR1, the MSI-X table). `None` when `resource2` is not such
    /// a path (a region file on the host), the device is `ivshmem-plain`,
    /// or the registers cannot be mapped (no permission): the guest then
    /// does not ring.
    pub fn beside(resource2: &Path) -> Option<Registers> {
        if resource2.file_name()? != "resource2" {
            return None;
        }
        // `ivshmem-plain` has the register BAR too, and reads IVPosition 0
        // there; only `ivshmem-doorbell` (with its default msi=on) has the
        // MSI-X BAR, BAR1.
        if !resource2.with_file_name("resource1").exists() {
            return None;
        }
        let path: PathBuf = resource2.with_file_name("resource0");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .ok()?;
        let len = file.metadata().ok()?.len();
        if len < REGISTERS as u64 {
            return None;
        }
        let map = memmap2::MmapOptions::new()
            .len(REGISTERS)
            .map_raw(&file)
            .ok()?;
        Some(Registers { map })
    }

    /// This VM's peer id (`IVPosition`), or `None` when the device has no
    /// server (`ivshmem-plain`).
    pub fn position(&self) -> Option<u16> {
        // SAFETY: IV_POSITION + 4 <= REGISTERS bytes of a live mapping (the
        // field's invariant), 4-aligned since the mapping is page-aligned; a
        // volatile read of a device register has no other effect.
        let v = unsafe {
            std::ptr::read_volatile(self.map.as_ptr().add(IV_POSITION).cast::<u32>()) as i32
        };
        u16::try_from(v).ok()
    }

    /// Rings `vector` of peer `peer`: QEMU signals that peer's eventfd.
    pub fn ring(&self, peer: u16, vector: u16) {
        let value = (u32::from(peer) << 16) | u32::from(vector);
        // SAFETY: DOORBELL + 4 <= REGISTERS bytes of a live, writable
        // mapping (the field's invariant), 4-aligned; the device takes the
        // 32-bit write as a doorbell and nothing of ours is aliased.
        unsafe {
            std::ptr::write_volatile(self.map.as_mut_ptr().add(DOORBELL).cast::<u32>(), value);
        }
    }
}

/// How a guest in a VM rings the worker: its device's registers and the
/// worker's peer id.
#[derive(Debug, Clone)]
pub struct Doorbell {
    registers: std::sync::Arc<Registers>,
    worker: u16,
}

impl Doorbell {
    /// The doorbell to `worker` through `registers`.
    pub fn new(registers: std::sync::Arc<Registers>, worker: u16) -> Doorbell {
        Doorbell { registers, worker }
    }

    /// Rings the worker (vector 0: every sleeping thread of the region's
    /// worker looks at its ring).
    pub fn ring(&self) {
        self.registers.ring(self.worker, 0);
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    /// A regular file stands in for a register BAR (in a real guest,
    /// `resource0` is a sysfs file that maps the device's registers): the
    /// position is read and the doorbell written where the device has them.
    #[test]
    fn registers_are_read_and_written_at_the_devices_offsets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("resource2"), b"").unwrap();
        // ivshmem-plain: no BAR1, so no doorbell whatever IVPosition says.
        std::fs::write(dir.path().join("resource0"), vec![0u8; 256]).unwrap();
        assert!(Registers::beside(&dir.path().join("resource2")).is_none());
        std::fs::write(dir.path().join("resource1"), b"").unwrap();
        let mut bar = vec![0u8; 256];
        bar[IV_POSITION..IV_POSITION + 4].copy_from_slice(&7i32.to_le_bytes());
        std::fs::write(dir.path().join("resource0"), &bar).unwrap();
        let regs = Registers::beside(&dir.path().join("resource2")).unwrap();
        assert_eq!(regs.position(), Some(7));
        regs.ring(3, 1);
        drop(regs);
        let bar = std::fs::read(dir.path().join("resource0")).unwrap();
        assert_eq!(
            &bar[DOORBELL..DOORBELL + 4],
            &((3u32 << 16) | 1).to_le_bytes()
        );

        // Without a server the position reads -1: no doorbell.
        let mut bar = vec![0u8; 256];
        bar[IV_POSITION..IV_POSITION + 4].copy_from_slice(&(-1i32).to_le_bytes());
        std::fs::write(dir.path().join("resource0"), &bar).unwrap();
        let regs = Registers::beside(&dir.path().join("resource2")).unwrap();
        assert_eq!(regs.position(), None);
        // A region file on the host has no registers.
        assert!(Registers::beside(&dir.path().join("region")).is_none());
    }
}
