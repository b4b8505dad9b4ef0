//! Finding the region inside a VM: the ivshmem PCI device (vendor 0x1af4,
//! device 0x1110) whose BAR2 (`resource2`) holds a valid region header.

use std::path::{Path, PathBuf};

fn read_hex(path: &Path) -> Option<u32> {
    let s = std::fs::read_to_string(path).ok()?;
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// The `resource2` path of the first ivshmem device under `sysfs_devices`
/// (normally `/sys/bus/pci/devices`) that holds a valid region.
pub fn find_region(sysfs_devices: &Path) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(sysfs_devices).map_err(|e| {
        format!(
            "AVA_REGION is not set and {} cannot be read: {e}",
            sysfs_devices.display()
        )
    })?;
    let mut problems = Vec::new();
    let mut devs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    devs.sort();
    for dev in devs {
        if read_hex(&dev.join("vendor")) != Some(0x1af4)
            || read_hex(&dev.join("device")) != Some(0x1110)
        {
            continue;
        }
        let enable = dev.join("enable");
        if std::fs::read_to_string(&enable).is_ok_and(|s| s.trim() == "0") {
            let _ = std::fs::write(&enable, "1");
        }
        let bar = dev.join("resource2");
        match remoting_region_ok(&bar) {
            Ok(()) => return Ok(bar),
            Err(e) => problems.push(format!("{}: {e}", bar.display())),
        }
    }
    if problems.is_empty() {
        Err("AVA_REGION is not set and no ivshmem device (1af4:1110) was found".into())
    } else {
        Err(format!("no usable ivshmem region: {}", problems.join("; ")))
    }
}

fn remoting_region_ok(path: &Path) -> Result<(), String> {
    remoting::transport_region_check(path)
}
