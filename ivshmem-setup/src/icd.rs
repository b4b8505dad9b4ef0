//! Installing the OpenCL guest library as an installable client driver:
//! a file in the ICD loader's vendors directory that names the library.
//!
//! The system's ICD loader (ocl-icd, or the Khronos loader) reads every
//! `*.icd` file of `/etc/OpenCL/vendors` (or of `OCL_ICD_VENDORS`), loads
//! the library each names and lists its platforms beside the others'.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Where ICD loaders look for vendor files.
pub const VENDORS_DIR: &str = "/etc/OpenCL/vendors";

/// Writes `vendors/name` naming `lib` (made absolute), creating the
/// directory if needed; returns the file written. Fails when `lib` is not
/// a readable file or `name` does not end in `.icd` (loaders skip it).
pub fn install(lib: &Path, vendors: &Path, name: &str) -> Result<PathBuf> {
    if !name.ends_with(".icd") || name.contains('/') {
        bail!("{name:?} is not a vendor file name: ICD loaders read only NAME.icd");
    }
    let lib = std::path::absolute(lib).with_context(|| format!("resolving {}", lib.display()))?;
    let meta = std::fs::metadata(&lib).with_context(|| {
        format!(
            "{} is not readable (the guest library, libava_opencl.so)",
            lib.display()
        )
    })?;
    if !meta.is_file() {
        bail!(
            "{} is not a file (the guest library, libava_opencl.so)",
            lib.display()
        );
    }
    std::fs::create_dir_all(vendors).with_context(|| format!("creating {}", vendors.display()))?;
    let file = vendors.join(name);
    std::fs::write(&file, format!("{}\n", lib.display()))
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_library_path_and_refuses_what_a_loader_would_skip() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libava_opencl.so");
        std::fs::write(&lib, b"\x7fELF").unwrap();
        let vendors = dir.path().join("etc/OpenCL/vendors");
        let file = install(&lib, &vendors, "ava.icd").unwrap();
        assert_eq!(file, vendors.join("ava.icd"));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{}\n", lib.display())
        );
        let e = install(&lib, &vendors, "ava.txt").unwrap_err();
        assert!(e.to_string().contains("NAME.icd"), "{e}");
        let e = install(&dir.path().join("missing.so"), &vendors, "ava.icd").unwrap_err();
        assert!(format!("{e:#}").contains("not readable"), "{e:#}");
        let e = install(dir.path(), &vendors, "ava.icd").unwrap_err();
        assert!(e.to_string().contains("not a file"), "{e}");
    }
}
