//! Regions: creating (formatting) and opening the shared mapping, the worker
//! lease and heartbeat, and access to the channels.

use std::path::Path;
use std::sync::atomic::Ordering;

use zerocopy::{FromBytes, IntoBytes};

use crate::Error;
use crate::arena::Arena;
use crate::channel::{self, ChannelStatus, GuestChannel, WorkerChannel};
use crate::doorbell::{Doorbell, Registers};
use crate::layout::{self, RegionHeader};
use crate::shm::Shm;

/// Sizes of a region to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionConfig {
    /// Number of channels (guest processes or threads served at once).
    pub channels: u32,
    /// Data bytes of each command ring (a power of two, at least 64).
    pub cmd_ring_size: u64,
    /// Data bytes of each response ring (a power of two, at least 64).
    pub resp_ring_size: u64,
    /// Bytes of each channel's data arena (a multiple of 4096).
    pub arena_size: u64,
    /// Bytes of the region's buffer heap (a multiple of 4096; 0 for none),
    /// where the worker may place device buffers that the guest then reads
    /// and writes in place.
    pub heap_size: u64,
}

impl Default for RegionConfig {
    /// Four channels with 64 KiB rings and a 2 MiB arena each, and no heap:
    /// about 8.5 MiB, which fits a 16 MiB ivshmem BAR.
    fn default() -> Self {
        RegionConfig {
            channels: 4,
            cmd_ring_size: 64 << 10,
            resp_ring_size: 64 << 10,
            arena_size: 2 << 20,
            heap_size: 0,
        }
    }
}

impl RegionConfig {
    /// Bytes a region of this configuration occupies.
    pub fn total_size(&self) -> u64 {
        self.header().total_size
    }

    fn header(&self) -> RegionHeader {
        RegionHeader::for_config(
            self.channels,
            self.cmd_ring_size,
            self.resp_ring_size,
            self.arena_size,
            self.heap_size,
        )
    }
}

/// A mapped, validated region.
#[derive(Debug, Clone)]
pub struct Region {
    shm: Shm,
    header: RegionHeader,
    /// The ivshmem device's registers, when the region is a device's
    /// memory BAR in a VM (a guest rings the worker through them).
    registers: Option<std::sync::Arc<Registers>>,
}

impl Region {
    /// Creates (or truncates) the file at `path`, sizes it for `config` and
    /// formats it. The magic is written last, so a concurrent opener sees
    /// either no region or a complete one.
    pub fn create(path: &Path, config: &RegionConfig) -> Result<Region, Error> {
        let header = config.header();
        header.validate(header.total_size).map_err(Error::Config)?;
        let shm = Shm::map(path, Some(header.total_size))?;
        Self::format(shm, header)
    }

    /// Formats an existing mapping (for example an ivshmem BAR that is larger
    /// than the layout needs) with `config`.
    pub fn format_existing(path: &Path, config: &RegionConfig) -> Result<Region, Error> {
        let header = config.header();
        header.validate(header.total_size).map_err(Error::Config)?;
        let shm = Shm::map(path, None)?;
        if header.total_size > shm.len() as u64 {
            return Err(Error::BadGeometry {
                path: path.to_owned(),
                reason: format!(
                    "the configuration needs {} bytes but the file has {}",
                    header.total_size,
                    shm.len()
                ),
            });
        }
        Self::format(shm, header)
    }

    fn format(shm: Shm, header: RegionHeader) -> Result<Region, Error> {
        shm.zero(0, header.total_size as usize);
        let mut unsealed = header;
        unsealed.magic = [0; 8];
        shm.write(0, unsealed.as_bytes());
        std::sync::atomic::fence(Ordering::Release);
        shm.write(0, &header.magic);
        Ok(Region {
            shm,
            header,
            registers: None,
        })
    }

    /// Opens and validates an existing region: magic, version and every size
    /// must be right, or a clear error says which is not.
    pub fn open(path: &Path) -> Result<Region, Error> {
        let shm = Shm::map(path, None)?;
        let path = shm.path().to_owned();
        let mut raw = [0u8; size_of::<RegionHeader>()];
        if shm.len() < raw.len() {
            return Err(Error::BadGeometry {
                path,
                reason: format!("the file has only {} bytes", shm.len()),
            });
        }
        shm.read(0, &mut raw);
        let header = RegionHeader::read_from_bytes(&raw).expect("exact size");
        if header.magic != layout::MAGIC {
            return Err(Error::BadMagic {
                path,
                found: header.magic,
                expected: layout::MAGIC,
            });
        }
        if header.version != layout::VERSION {
            return Err(Error::BadVersion {
                path,
                found: header.version,
                expected: layout::VERSION,
            });
        }
        header
            .validate(shm.len() as u64)
            .map_err(|reason| Error::BadGeometry { path, reason })?;
        let registers = Registers::beside(shm.path()).map(std::sync::Arc::new);
        Ok(Region {
            shm,
            header,
            registers,
        })
    }

    /// The validated header.
    pub fn header(&self) -> &RegionHeader {
        &self.header
    }

    /// The buffer heap, seen through the same bounds-checked view as an
    /// arena (empty when the region has none).
    pub fn heap(&self) -> Arena {
        heap_of(&self.shm, &self.header)
    }

    /// The backing file's path.
    pub fn path(&self) -> &Path {
        self.shm.path()
    }

    /// Number of channels.
    pub fn channel_count(&self) -> u32 {
        self.header.channel_count
    }

    /// The worker's heartbeat counter (0 when no worker ever served the region).
    pub fn worker_heartbeat(&self) -> u64 {
        self.shm
            .atomic_u64(layout::WORKER_HEARTBEAT)
            .load(Ordering::Acquire)
    }

    /// Advances the worker's heartbeat; the worker calls this periodically.
    pub fn beat_worker(&self) {
        self.shm
            .atomic_u64(layout::WORKER_HEARTBEAT)
            .fetch_add(1, Ordering::Release);
    }

    /// The pid of the worker that holds the region's lease (0 when none).
    pub fn worker_pid(&self) -> u32 {
        self.shm
            .atomic_u64(layout::WORKER_PID)
            .load(Ordering::Acquire) as u32
    }

    /// The region's bell: the worker's region thread sleeps on it when
    /// nothing changes (announce, re-check, sleep: see [`crate::bell`]); a
    /// guest of the worker's kernel rings it after claiming a channel, and
    /// the worker's own threads when they finish with one.
    pub fn bell(&self) -> crate::bell::Bell {
        crate::bell::Bell::new(&self.shm, layout::REGION_BELL)
    }

    /// Takes the region's worker lease for `pid`. Fails with
    /// [`Error::WorkerBusy`] while another live process holds it; a lease left
    /// by a dead process is taken over.
    pub fn acquire_worker(&self, pid: u32) -> Result<(), Error> {
        self.shm
            .atomic_u64(layout::WORKER_KERNEL)
            .store(kernel_id(), Ordering::Release);
        let word = self.shm.atomic_u64(layout::WORKER_PID);
        loop {
            let cur = word.load(Ordering::Acquire);
            let holder = cur as u32;
            if holder != 0 && holder != pid && channel::pid_alive(holder) {
                return Err(Error::WorkerBusy(holder));
            }
            if word
                .compare_exchange(cur, u64::from(pid), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// Gives up the worker lease if `pid` holds it.
    pub fn release_worker(&self, pid: u32) {
        let _ = self.shm.atomic_u64(layout::WORKER_PID).compare_exchange(
            u64::from(pid),
            0,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    fn check_index(&self, index: u32) -> Result<(), Error> {
        if index >= self.header.channel_count {
            return Err(Error::NoSuchChannel {
                index,
                count: self.header.channel_count,
            });
        }
        Ok(())
    }

    /// Guest side: claims the first free channel.
    pub fn claim(&self) -> Result<GuestChannel, Error> {
        let doorbell = self.guest_doorbell();
        for index in 0..self.header.channel_count {
            if let Some(ch) =
                GuestChannel::try_claim(&self.shm, &self.header, index, doorbell.clone())
            {
                return Ok(ch);
            }
        }
        Err(Error::NoFreeChannel(self.header.channel_count))
    }

    /// How a guest in a VM rings the worker: the device has a server
    /// (`ivshmem-doorbell`) and the worker serving the region takes
    /// doorbells. `None` on the host, with `ivshmem-plain`, or when the
    /// worker does not take them.
    fn guest_doorbell(&self) -> Option<Doorbell> {
        let registers = self.registers.as_ref()?;
        registers.position()?;
        Some(Doorbell::new(registers.clone(), self.worker_doorbell()?))
    }

    /// The ivshmem peer id the worker takes doorbells as, if it does.
    pub fn worker_doorbell(&self) -> Option<u16> {
        let v = self
            .shm
            .atomic_u64(layout::WORKER_DOORBELL)
            .load(Ordering::Acquire);
        u16::try_from(v.checked_sub(1)?).ok()
    }

    /// Worker side: says that the worker takes doorbells as ivshmem peer
    /// `peer` (`None`: it no longer does).
    pub fn set_worker_doorbell(&self, peer: Option<u16>) {
        self.shm
            .atomic_u64(layout::WORKER_DOORBELL)
            .store(peer.map_or(0, |p| u64::from(p) + 1), Ordering::Release);
    }

    /// Worker side, on a doorbell from a guest in a VM (which cannot wake
    /// a futex of the worker's kernel): wakes the region's thread (a guest
    /// rings after claiming a channel) and every channel's thread whose
    /// bell a guest rang ([`crate::bell::RUNG`]). A bell nobody rang costs
    /// a load.
    pub fn ring_all(&self) {
        self.bell().ring();
        for index in 0..self.header.channel_count {
            let base = self.header.channel(index).base;
            crate::bell::Bell::new(&self.shm, base + layout::CH_CMD_BELL).wake_rung();
        }
    }

    /// The current state of channel `index`.
    pub fn status(&self, index: u32) -> Result<ChannelStatus, Error> {
        self.check_index(index)?;
        Ok(channel::status(&self.shm, &self.header, index))
    }

    /// Worker side: the endpoints of channel `index` if a guest holds it.
    pub fn attach(&self, index: u32) -> Result<Option<WorkerChannel>, Error> {
        self.check_index(index)?;
        Ok(WorkerChannel::attach(&self.shm, &self.header, index))
    }

    /// Worker side: frees channel `index` if it is still owned under
    /// `generation` (for a guest that died). Returns whether it did.
    pub fn reclaim(&self, index: u32, generation: u32) -> Result<bool, Error> {
        self.check_index(index)?;
        Ok(channel::free(&self.shm, &self.header, index, generation))
    }
}

/// The heap of a region with `header`, mapped by `shm`.
pub(crate) fn heap_of(shm: &Shm, header: &RegionHeader) -> Arena {
    Arena::new(
        shm.clone(),
        header.heap_offset as usize,
        header.heap_size as usize,
    )
}

/// This kernel's identity: a hash of its boot id (never 0; 0 when it cannot
/// be read). Processes of one kernel — on the host or in its containers —
/// share it; a VM has its own.
pub fn kernel_id() -> u64 {
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let Ok(boot) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
            return 0;
        };
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in boot.trim().bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h.max(1)
    })
}

/// Whether the worker that serves the region in `shm` runs on this kernel.
pub(crate) fn same_kernel(shm: &Shm) -> bool {
    let theirs = shm
        .atomic_u64(layout::WORKER_KERNEL)
        .load(Ordering::Acquire);
    theirs != 0 && theirs == kernel_id()
}
