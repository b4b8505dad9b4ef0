//! The in-guest side of ivshmem: find the device on the PCI bus, enable
//! it, and check that its BAR2 holds a valid region ([`find_region`] is what
//! a guest library calls when `AVA_REGION` is unset). Kept apart from the
//! `ivshmem-setup` host tooling so that a guest library, loaded into every
//! application, links only this.

pub mod fake_sysfs;
pub mod probe;
pub mod size;

pub use probe::{ProbeError, ProbedDevice, find_region, find_region_in, probe, resolve_region};
