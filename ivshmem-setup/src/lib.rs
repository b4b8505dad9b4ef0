//! Host and guest tooling for ivshmem regions.
//!
//! On the host, a region is a file (normally in `/dev/shm`, or on hugetlbfs)
//! that QEMU maps as the BAR2 of an `ivshmem-plain` PCI device; inside the VM
//! the same memory is `/sys/bus/pci/devices/<addr>/resource2`. This crate
//! covers both ends:
//!
//! - [`sizing`] and [`host`]: create a region file of a given BAR size,
//!   inspect and remove it;
//! - [`vmconfig`]: the QEMU arguments and libvirt `<shmem>` element that give
//!   a VM the device;
//! - [`probe`]: in the guest, find the device, enable it and check the region
//!   in its BAR ([`probe::find_region`] is what a guest library calls when
//!   `AVA_REGION` is unset);
//! - [`icd`]: in the guest, install the OpenCL guest library as an
//!   installable client driver (a vendors file for the ICD loader);
//! - [`peer`]: `ping` and `echo`, a test peer pair that proves the path works
//!   before any API is remoted over it.
//!
//! The `ivshmem-setup` binary is a command-line front end to all of these.

pub mod host;
pub mod icd;
pub mod peer;
pub mod signals;
pub mod sizing;
pub mod vmconfig;

// The in-guest probe lives in its own crate (what guest libraries link).
pub use ivshmem_probe::{
    ProbeError, ProbedDevice, fake_sysfs, find_region, probe, resolve_region, size,
};
