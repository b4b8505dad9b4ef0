//! The calls an executor is running, in a file its supervisor maps too: if
//! the executor dies, the supervisor reads which call (API, function,
//! region, channel) was executing, to log it.
//!
//! ```text
//! offset 0                 API names, MAX_APIS × NAME bytes (NUL-padded)
//! offset SLOTS             one u64 per (region of the group, channel):
//!                          0, or IN_FLIGHT_BUSY | api << 32 | function id
//! ```
//! The file is the supervisor's and the executor's only; no guest maps it.

use std::path::Path;
use std::sync::atomic::Ordering;

use remoting::worker::{IN_FLIGHT_BUSY, InFlightSlot};
use transport::Shm;

/// Most APIs an executor names.
const MAX_APIS: usize = 8;
/// Bytes of each API name.
const NAME: usize = 32;
/// Offset of the first slot.
const SLOTS: usize = MAX_APIS * NAME;
/// Channels per region the table has room for (a region's maximum).
const MAX_CHANNELS: usize = 4096;

/// A call that was executing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// The region's position in its group.
    pub region: usize,
    /// The channel.
    pub channel: u32,
    /// The API's name.
    pub api: String,
    /// The function id in the API's specification.
    pub func: u32,
}

/// The table of calls in flight of one executor (one isolation group).
#[derive(Debug, Clone)]
pub struct InFlight {
    shm: Shm,
    regions: usize,
}

impl InFlight {
    /// Creates (or empties) the table at `path` for `regions` regions.
    pub fn create(path: &Path, regions: usize) -> anyhow::Result<InFlight> {
        let len = SLOTS + regions.max(1) * MAX_CHANNELS * 8;
        Ok(InFlight {
            shm: Shm::map(path, Some(len as u64))?,
            regions,
        })
    }

    /// Opens the table a supervisor created.
    pub fn open(path: &Path) -> anyhow::Result<InFlight> {
        let shm = Shm::map(path, None)?;
        let regions = shm.len().saturating_sub(SLOTS) / (MAX_CHANNELS * 8);
        Ok(InFlight { shm, regions })
    }

    /// Records the executor's API names, in its numbering.
    pub fn set_apis(&self, names: &[&str]) {
        self.shm.zero(0, SLOTS);
        for (i, n) in names.iter().take(MAX_APIS).enumerate() {
            let b = n.as_bytes();
            self.shm.write(i * NAME, &b[..b.len().min(NAME - 1)]);
        }
    }

    fn api_name(&self, i: usize) -> String {
        let mut b = [0u8; NAME];
        self.shm.read(i * NAME, &mut b);
        let end = b.iter().position(|&c| c == 0).unwrap_or(NAME);
        String::from_utf8_lossy(&b[..end]).into_owned()
    }

    /// The slot of `channel` of the group's region number `region`, for a
    /// channel of API number `api`; none beyond the table.
    pub fn slot(&self, region: usize, channel: u32, api: u8) -> Option<InFlightSlot> {
        let channel = channel as usize;
        (region < self.regions && channel < MAX_CHANNELS && usize::from(api) < MAX_APIS).then(
            || {
                InFlightSlot::new(
                    self.shm.clone(),
                    SLOTS + (region * MAX_CHANNELS + channel) * 8,
                    api,
                )
            },
        )
    }

    /// The calls recorded as executing.
    pub fn running(&self) -> Vec<Running> {
        let mut out = Vec::new();
        for region in 0..self.regions {
            for channel in 0..MAX_CHANNELS {
                let off = SLOTS + (region * MAX_CHANNELS + channel) * 8;
                let w = self.shm.atomic_u64(off).load(Ordering::Acquire);
                if w & IN_FLIGHT_BUSY != 0 {
                    out.push(Running {
                        region,
                        channel: channel as u32,
                        api: self.api_name(((w >> 32) as usize) & 0xff),
                        func: w as u32,
                    });
                }
            }
        }
        out
    }

    /// Forgets every recorded call (before an executor starts).
    pub fn clear(&self) {
        self.shm.zero(SLOTS, self.shm.len() - SLOTS);
    }
}
