//! Guest side: finding the ivshmem device and checking the region in it.
//!
//! Inside a VM, QEMU's `ivshmem-plain` device is the PCI function
//! `1af4:1110`; its BAR2 is the host's region file. No driver is needed:
//! the BAR is mapped through sysfs (`/sys/bus/pci/devices/<addr>/resource2`),
//! once the device is enabled (`enable` reads 1). [`probe`] finds every such
//! device, enables it, and checks that its BAR holds a valid region that fits.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use transport::Region;
use transport::layout::RegionHeader;
use zerocopy::FromBytes;

use crate::size::human_size;

/// PCI vendor id of ivshmem (Red Hat, Inc.).
pub const IVSHMEM_VENDOR: u16 = 0x1af4;
/// PCI device id of ivshmem.
pub const IVSHMEM_DEVICE: u16 = 0x1110;
/// Environment variable that names the region file, overriding probing.
pub const REGION_ENV: &str = "AVA_REGION";

/// A device whose BAR2 holds a usable region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbedDevice {
    /// PCI address, e.g. `0000:00:03.0`.
    pub address: String,
    /// The BAR2 file to map: `<sysfs>/bus/pci/devices/<address>/resource2`.
    pub resource: PathBuf,
    /// Size of BAR2 in bytes.
    pub bar_size: u64,
    /// Channels in the region.
    pub channels: u32,
    /// Bytes the region's layout uses.
    pub region_size: u64,
}

/// What is wrong with one ivshmem device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceProblem {
    /// The device could not be enabled (writing 1 to `enable` needs root).
    #[error("cannot enable it by writing 1 to {path} (run as root): {source}")]
    Enable {
        /// The `enable` file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The device has no BAR2 (an `ivshmem-doorbell` without memory?).
    #[error("it has no BAR2 ({0} is missing)")]
    NoBar(PathBuf),
    /// BAR2 could not be mapped.
    #[error("cannot map BAR2: {0}")]
    Map(#[source] transport::Error),
    /// BAR2 does not start with a valid region header.
    #[error(
        "BAR2 holds no valid region: {0}. Create the region on the host (`ivshmem-setup create PATH --size SIZE`) on the file that QEMU's memory-backend-file maps"
    )]
    WrongHeader(#[source] transport::Error),
    /// The region's layout is larger than the BAR.
    #[error(
        "BAR2 is {bar} ({bar_size} bytes) but the region's layout needs {need} ({needed} bytes): give the VM a device as large as the region file (QEMU's memory-backend-file size=)",
        bar = human_size(*bar_size),
        need = human_size(*needed)
    )]
    BarTooSmall {
        /// The BAR's size.
        bar_size: u64,
        /// What the header says the layout needs.
        needed: u64,
    },
}

/// One ivshmem device that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("ivshmem device {address}: {problem}")]
pub struct DeviceError {
    /// PCI address.
    pub address: String,
    /// What is wrong.
    #[source]
    pub problem: DeviceProblem,
}

/// Why probing found no usable region.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The PCI device directory could not be listed.
    #[error("cannot list PCI devices in {path} (is sysfs mounted?): {source}")]
    Sysfs {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The VM has no ivshmem device at all.
    #[error(
        "no ivshmem device (PCI {IVSHMEM_VENDOR:04x}:{IVSHMEM_DEVICE:04x}) in {0}: give the VM one, e.g. QEMU `-object memory-backend-file,id=avashm,size=16M,share=on,mem-path=/dev/shm/NAME -device ivshmem-plain,memdev=avashm` (see `ivshmem-setup qemu-args`) or libvirt `<shmem>` (see `ivshmem-setup libvirt-xml`)"
    )]
    NoDevice(PathBuf),
    /// Every ivshmem device found is unusable.
    #[error("{}", join(.0))]
    Unusable(Vec<DeviceError>),
}

fn join(errors: &[DeviceError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

fn parse_id(text: &str) -> Option<u16> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    u16::from_str_radix(t, 16).ok()
}

/// Whether the PCI function in `dir` is an ivshmem device.
fn is_ivshmem(dir: &Path) -> bool {
    let id = |name| read_trimmed(&dir.join(name)).as_deref().and_then(parse_id);
    id("vendor") == Some(IVSHMEM_VENDOR) && id("device") == Some(IVSHMEM_DEVICE)
}

/// Finds every ivshmem device under `sysfs_root` (normally `/sys`), enables
/// it if needed, and checks its BAR2 region. Returns the usable devices in
/// PCI address order; fails when there is none, saying why.
pub fn probe(sysfs_root: &Path) -> Result<Vec<ProbedDevice>, ProbeError> {
    let pci = sysfs_root.join("bus/pci/devices");
    let entries = fs::read_dir(&pci).map_err(|source| ProbeError::Sysfs {
        path: pci.clone(),
        source,
    })?;
    let mut dirs: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(_, dir)| is_ivshmem(dir))
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(ProbeError::NoDevice(pci));
    }
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (address, dir) in dirs {
        match check_device(&address, &dir) {
            Ok(dev) => {
                tracing::info!(
                    address = %dev.address,
                    bar = dev.bar_size,
                    channels = dev.channels,
                    region = dev.region_size,
                    "ivshmem device holds a region"
                );
                good.push(dev);
            }
            Err(problem) => {
                let err = DeviceError { address, problem };
                tracing::warn!("{err}");
                bad.push(err);
            }
        }
    }
    if good.is_empty() {
        return Err(ProbeError::Unusable(bad));
    }
    Ok(good)
}

fn check_device(address: &str, dir: &Path) -> Result<ProbedDevice, DeviceProblem> {
    let enable = dir.join("enable");
    if read_trimmed(&enable).as_deref() == Some("0") {
        tracing::debug!(address, "enabling the device");
        fs::write(&enable, "1").map_err(|source| DeviceProblem::Enable {
            path: enable.clone(),
            source,
        })?;
    }
    let resource = dir.join("resource2");
    if !resource.exists() {
        return Err(DeviceProblem::NoBar(resource));
    }
    // Map the BAR once to read the header, so that a BAR smaller than the
    // layout can be told apart from a broken header.
    let shm = transport::Shm::map(&resource, None).map_err(DeviceProblem::Map)?;
    let bar_size = shm.len() as u64;
    let mut raw = [0u8; size_of::<RegionHeader>()];
    if shm.len() >= raw.len() {
        shm.read(0, &mut raw);
    }
    drop(shm);
    let header = RegionHeader::read_from_bytes(&raw).expect("exact size");
    match Region::open(&resource) {
        Ok(region) => Ok(ProbedDevice {
            address: address.to_owned(),
            resource,
            bar_size,
            channels: region.channel_count(),
            region_size: region.header().total_size,
        }),
        Err(transport::Error::BadGeometry { .. })
            if header.total_size > bar_size && header.validate(u64::MAX).is_ok() =>
        {
            Err(DeviceProblem::BarTooSmall {
                bar_size,
                needed: header.total_size,
            })
        }
        Err(e @ transport::Error::Io { .. }) => Err(DeviceProblem::Map(e)),
        Err(e) => Err(DeviceProblem::WrongHeader(e)),
    }
}

/// Finds the region of this VM: the BAR2 of the first usable ivshmem device
/// under `/sys`. A guest library calls this when [`REGION_ENV`] is unset.
pub fn find_region() -> Result<PathBuf, ProbeError> {
    find_region_in(Path::new("/sys"))
}

/// [`find_region`] with another sysfs root.
pub fn find_region_in(sysfs_root: &Path) -> Result<PathBuf, ProbeError> {
    let devices = probe(sysfs_root)?;
    Ok(devices
        .into_iter()
        .next()
        .expect("probe returns at least one device")
        .resource)
}

/// The region to use: `$AVA_REGION` if set and not empty, else
/// [`find_region`].
pub fn resolve_region() -> Result<PathBuf, ProbeError> {
    match std::env::var_os(REGION_ENV) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => find_region(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_sysfs::FakeSysfs;
    use transport::RegionConfig;

    /// A fake sysfs in a temporary directory that lives as long as the value.
    struct Sys {
        _dir: tempfile::TempDir,
        sys: FakeSysfs,
    }

    impl std::ops::Deref for Sys {
        type Target = FakeSysfs;
        fn deref(&self) -> &FakeSysfs {
            &self.sys
        }
    }

    fn fake_sysfs() -> Sys {
        let dir = tempfile::tempdir().unwrap();
        let sys = FakeSysfs::at(dir.path());
        Sys { _dir: dir, sys }
    }

    fn small() -> RegionConfig {
        RegionConfig {
            channels: 2,
            cmd_ring_size: 4096,
            resp_ring_size: 4096,
            arena_size: 4096,
            heap_size: 0,
        }
    }

    #[test]
    fn no_device_is_an_error() {
        let sys = fake_sysfs();
        sys.add_other_device("0000:00:01.0", 0x1234, 0x1111);
        let e = probe(sys.root()).unwrap_err();
        assert!(matches!(e, ProbeError::NoDevice(_)), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("no ivshmem device (PCI 1af4:1110)"),
            "{text}"
        );
        assert!(text.contains("ivshmem-plain"), "{text}");
    }

    #[test]
    fn missing_sysfs_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = probe(dir.path()).unwrap_err();
        assert!(matches!(e, ProbeError::Sysfs { .. }), "{e}");
    }

    #[test]
    fn good_device_is_enabled_and_found() {
        let sys = fake_sysfs();
        sys.add_other_device("0000:00:01.0", 0x1234, 0x1111);
        let res = sys.add_ivshmem("0000:00:03.0", 1 << 20);
        Region::format_existing(&res, &small()).unwrap();
        let devices = probe(sys.root()).unwrap();
        assert_eq!(devices.len(), 1);
        let d = &devices[0];
        assert_eq!(d.address, "0000:00:03.0");
        assert_eq!(d.resource, res);
        assert_eq!(d.bar_size, 1 << 20);
        assert_eq!(d.channels, 2);
        assert_eq!(d.region_size, small().total_size());
        assert_eq!(sys.enable_value("0000:00:03.0"), "1");
        assert_eq!(find_region_in(sys.root()).unwrap(), res);
    }

    #[test]
    fn wrong_header_is_an_error() {
        let sys = fake_sysfs();
        sys.add_ivshmem("0000:00:03.0", 1 << 20);
        let e = probe(sys.root()).unwrap_err();
        let ProbeError::Unusable(errs) = &e else {
            panic!("{e}")
        };
        assert!(
            matches!(errs[0].problem, DeviceProblem::WrongHeader(_)),
            "{e}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with("ivshmem device 0000:00:03.0: BAR2 holds no valid region"),
            "{text}"
        );
        assert!(text.contains("not a region"), "{text}");
    }

    #[test]
    fn bar_smaller_than_region_is_an_error() {
        let sys = fake_sysfs();
        let res = sys.add_ivshmem("0000:00:03.0", 1 << 20);
        Region::format_existing(&res, &small()).unwrap();
        // The BAR (file) shrinks below the layout the header describes.
        let f = fs::OpenOptions::new().write(true).open(&res).unwrap();
        f.set_len(8192).unwrap();
        let e = probe(sys.root()).unwrap_err();
        let ProbeError::Unusable(errs) = &e else {
            panic!("{e}")
        };
        assert!(
            matches!(
                errs[0].problem,
                DeviceProblem::BarTooSmall { bar_size: 8192, needed } if needed == small().total_size()
            ),
            "{e}"
        );
        assert!(e.to_string().contains("BAR2 is 8 KiB (8192 bytes)"), "{e}");
    }

    #[test]
    fn good_device_wins_over_bad_ones() {
        let sys = fake_sysfs();
        sys.add_ivshmem("0000:00:02.0", 1 << 20);
        let res = sys.add_ivshmem("0000:00:04.0", 1 << 20);
        Region::format_existing(&res, &small()).unwrap();
        let devices = probe(sys.root()).unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].address, "0000:00:04.0");
    }

    #[test]
    fn device_without_bar2_is_reported() {
        let sys = fake_sysfs();
        let res = sys.add_ivshmem("0000:00:03.0", 4096);
        fs::remove_file(res).unwrap();
        let e = probe(sys.root()).unwrap_err();
        assert!(e.to_string().contains("has no BAR2"), "{e}");
    }
}
