//! A fake sysfs tree: a **test double** for [`crate::probe::probe`].
//!
//! It lays out, under a directory of the caller's choosing, the few files
//! that probing reads in a real `/sys`:
//!
//! ```text
//! ROOT/bus/pci/devices/<address>/vendor      "0x1af4\n"
//!                               /device      "0x1110\n"
//!                               /enable      "0\n"
//!                               /resource2   a regular file as large as the BAR
//! ```
//!
//! In a real guest `resource2` is a sysfs binary attribute that maps the BAR;
//! here it is an ordinary file that `mmap` treats the same way, so a region
//! can be formatted in it with `transport::Region::format_existing`. Nothing
//! outside tests should use this module.

use std::fs;
use std::path::{Path, PathBuf};

/// A fake sysfs tree rooted at a directory (see the module docs). It is a
/// test double: it does not clean up after itself; use a temporary directory.
#[derive(Debug, Clone)]
pub struct FakeSysfs {
    root: PathBuf,
}

impl FakeSysfs {
    /// An empty PCI device list under `root` (which should be a fresh
    /// temporary directory).
    pub fn at(root: &Path) -> FakeSysfs {
        fs::create_dir_all(root.join("bus/pci/devices")).expect("create fake sysfs");
        FakeSysfs {
            root: root.to_owned(),
        }
    }

    /// The root to pass to `probe`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn device_dir(&self, address: &str) -> PathBuf {
        self.root.join("bus/pci/devices").join(address)
    }

    /// Adds a non-ivshmem PCI function.
    pub fn add_other_device(&self, address: &str, vendor: u16, device: u16) {
        let dir = self.device_dir(address);
        fs::create_dir_all(&dir).expect("create fake device");
        fs::write(dir.join("vendor"), format!("0x{vendor:04x}\n")).expect("write vendor");
        fs::write(dir.join("device"), format!("0x{device:04x}\n")).expect("write device");
        fs::write(dir.join("enable"), "1\n").expect("write enable");
    }

    /// Adds a disabled ivshmem device whose BAR2 is `bar_size` zero bytes;
    /// returns the path of its `resource2`.
    pub fn add_ivshmem(&self, address: &str, bar_size: u64) -> PathBuf {
        self.add_other_device(address, 0x1af4, 0x1110);
        let dir = self.device_dir(address);
        fs::write(dir.join("enable"), "0\n").expect("write enable");
        let res = dir.join("resource2");
        let f = fs::File::create(&res).expect("create resource2");
        f.set_len(bar_size).expect("size resource2");
        res
    }

    /// What the device's `enable` file holds now.
    pub fn enable_value(&self, address: &str) -> String {
        fs::read_to_string(self.device_dir(address).join("enable"))
            .expect("read enable")
            .trim()
            .to_owned()
    }
}
