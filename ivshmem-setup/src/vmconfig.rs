//! The VM configuration that gives a guest a region: QEMU command-line
//! arguments and the libvirt `<shmem>` element.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::size::{format_size, human_size};

/// Default QEMU object id of the memory backend.
pub const DEFAULT_QEMU_ID: &str = "avashm";

/// Errors of building VM configuration.
#[derive(Debug, thiserror::Error)]
pub enum VmConfigError {
    /// The region file could not be examined.
    #[error("{path}: {error}")]
    Io {
        /// The region file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The file's size cannot be an ivshmem BAR.
    #[error(
        "{path} is {size} bytes, not a power of two: QEMU refuses such an ivshmem BAR; recreate it with `ivshmem-setup create --size`"
    )]
    NotPowerOfTwo {
        /// The region file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// A name that cannot be used.
    #[error("invalid name '{0}': use letters, digits, '-', '_' and '.', not starting with '.'")]
    BadName(String),
}

/// The region file's absolute path and size, checked to be a valid BAR size.
pub fn region_file(path: &Path) -> Result<(PathBuf, u64), VmConfigError> {
    let io = |error| VmConfigError::Io {
        path: path.to_owned(),
        error,
    };
    let abs = std::fs::canonicalize(path).map_err(io)?;
    let size = std::fs::metadata(&abs).map_err(io)?.len();
    if !size.is_power_of_two() {
        return Err(VmConfigError::NotPowerOfTwo { path: abs, size });
    }
    Ok((abs, size))
}

fn check_name(name: &str) -> Result<(), VmConfigError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(VmConfigError::BadName(name.to_owned()))
    }
}

/// QEMU's option syntax doubles a comma inside a value.
fn qemu_escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// The QEMU arguments that add an ivshmem-plain device backed by the file
/// at `path` (absolute) of `size` bytes, with memory-backend object `id`.
///
/// ```
/// use std::path::Path;
/// let args = ivshmem_setup::vmconfig::qemu_args(Path::new("/dev/shm/vm1"), 16 << 20, "avashm").unwrap();
/// assert_eq!(
///     args,
///     "-object memory-backend-file,id=avashm,size=16M,share=on,mem-path=/dev/shm/vm1 \
///      -device ivshmem-plain,memdev=avashm"
/// );
/// ```
pub fn qemu_args(path: &Path, size: u64, id: &str) -> Result<String, VmConfigError> {
    check_name(id)?;
    let path = path.to_string_lossy();
    let mem_path = qemu_escape(&path);
    // A path with spaces or quotes must survive the shell it is pasted into.
    let needs_quotes = mem_path
        .chars()
        .any(|c| c.is_whitespace() || "'\"$`\\!*?[]{}()<>|&;#~".contains(c));
    let object = format!(
        "memory-backend-file,id={id},size={},share=on,mem-path={mem_path}",
        format_size(size)
    );
    let object = if needs_quotes {
        format!("'{}'", object.replace('\'', r"'\''"))
    } else {
        object
    };
    Ok(format!(
        "-object {object} -device ivshmem-plain,memdev={id}"
    ))
}

/// The QEMU arguments that add an `ivshmem-doorbell` device whose server is
/// the worker serving the region at `path`: QEMU connects to the worker's
/// socket `<path>.sock`, gets the region's memory from it and an eventfd
/// that a guest rings the worker with (see `docs/qemu.md`). `id` names the
/// chardev.
///
/// ```
/// use std::path::Path;
/// let args = ivshmem_setup::vmconfig::qemu_doorbell_args(Path::new("/dev/shm/vm1"), "avashm").unwrap();
/// assert_eq!(
///     args,
///     "-chardev socket,path=/dev/shm/vm1.sock,id=avashm \
///      -device ivshmem-doorbell,chardev=avashm,vectors=1,ioeventfd=on"
/// );
/// ```
pub fn qemu_doorbell_args(path: &Path, id: &str) -> Result<String, VmConfigError> {
    check_name(id)?;
    let socket = format!("{}.sock", path.to_string_lossy());
    let chardev = format!("socket,path={},id={id}", qemu_escape(&socket));
    let chardev = if chardev
        .chars()
        .any(|c| c.is_whitespace() || "'\"$`\\!*?[]{}()<>|&;#~".contains(c))
    {
        format!("'{}'", chardev.replace('\'', r"'\''"))
    } else {
        chardev
    };
    Ok(format!(
        "-chardev {chardev} -device ivshmem-doorbell,chardev={id},vectors=1,ioeventfd=on"
    ))
}

/// The libvirt `<shmem>` element of an `ivshmem-doorbell` device named
/// `name`, whose server is the worker serving `/dev/shm/NAME` (its socket
/// `/dev/shm/NAME.sock`).
pub fn libvirt_doorbell_xml(name: &str) -> Result<String, VmConfigError> {
    check_name(name)?;
    let mut xml = String::new();
    let _ = writeln!(
        xml,
        "<!-- the worker serving /dev/shm/{name} is this device's ivshmem server (on \
         /dev/shm/{name}.sock): start it before the VM; put this element inside <devices>. -->"
    );
    let _ = writeln!(xml, "<shmem name='{name}'>");
    let _ = writeln!(xml, "  <model type='ivshmem-doorbell'/>");
    let _ = writeln!(xml, "  <server path='/dev/shm/{name}.sock'/>");
    let _ = writeln!(xml, "  <msi vectors='1' ioeventfd='on'/>");
    let _ = writeln!(xml, "</shmem>");
    Ok(xml)
}

/// The libvirt `<shmem>` element for a region of `size` bytes named `name`,
/// preceded by an XML comment that says where libvirt puts the file.
///
/// libvirt backs `<shmem name='NAME'>` with `/dev/shm/NAME`, so the region
/// must be created at that path.
pub fn libvirt_xml(name: &str, size: u64) -> Result<String, VmConfigError> {
    check_name(name)?;
    let (amount, unit) = if size.is_multiple_of(1 << 20) {
        (size >> 20, "M")
    } else if size.is_multiple_of(1 << 10) {
        (size >> 10, "K")
    } else {
        (size, "B")
    };
    let mut xml = String::new();
    let _ = writeln!(
        xml,
        "<!-- libvirt maps the region file /dev/shm/{name} ({}): create it there with \
         `ivshmem-setup create /dev/shm/{name} --size {}`; put this element inside <devices>. -->",
        human_size(size),
        format_size(size)
    );
    let _ = writeln!(xml, "<shmem name='{name}'>");
    let _ = writeln!(xml, "  <model type='ivshmem-plain'/>");
    let _ = writeln!(xml, "  <size unit='{unit}'>{amount}</size>");
    let _ = writeln!(xml, "</shmem>");
    Ok(xml)
}

/// The libvirt name for a region file: its file name.
pub fn default_libvirt_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_args_text() {
        let a = qemu_args(Path::new("/dev/shm/ava-vm1"), 16 << 20, "hostmem").unwrap();
        assert_eq!(
            a,
            "-object memory-backend-file,id=hostmem,size=16M,share=on,mem-path=/dev/shm/ava-vm1 \
             -device ivshmem-plain,memdev=hostmem"
        );
    }

    #[test]
    fn qemu_args_escape_commas_and_quote_spaces() {
        let a = qemu_args(Path::new("/tmp/a,b c/r"), 1 << 30, "m").unwrap();
        assert_eq!(
            a,
            "-object 'memory-backend-file,id=m,size=1G,share=on,mem-path=/tmp/a,,b c/r' \
             -device ivshmem-plain,memdev=m"
        );
        assert!(qemu_args(Path::new("/x"), 4096, "bad,id").is_err());
    }

    #[test]
    fn doorbell_forms_name_the_workers_socket() {
        assert_eq!(
            qemu_doorbell_args(Path::new("/dev/shm/a,b c"), "db").unwrap(),
            "-chardev 'socket,path=/dev/shm/a,,b c.sock,id=db' \
             -device ivshmem-doorbell,chardev=db,vectors=1,ioeventfd=on"
        );
        let xml = libvirt_doorbell_xml("ava-vm1").unwrap();
        assert!(xml.contains("<model type='ivshmem-doorbell'/>"), "{xml}");
        assert!(
            xml.contains("<server path='/dev/shm/ava-vm1.sock'/>"),
            "{xml}"
        );
        assert!(qemu_doorbell_args(Path::new("/x"), "bad id").is_err());
    }

    #[test]
    fn libvirt_xml_text() {
        let x = libvirt_xml("ava-vm1", 16 << 20).unwrap();
        let lines: Vec<_> = x.lines().collect();
        assert!(
            lines[0].starts_with("<!-- libvirt maps the region file /dev/shm/ava-vm1 (16 MiB)")
        );
        assert!(lines[0].contains("ivshmem-setup create /dev/shm/ava-vm1 --size 16M"));
        assert_eq!(
            &lines[1..],
            [
                "<shmem name='ava-vm1'>",
                "  <model type='ivshmem-plain'/>",
                "  <size unit='M'>16</size>",
                "</shmem>"
            ]
        );
        assert!(
            libvirt_xml("512k", 512 << 10)
                .unwrap()
                .contains("<size unit='K'>512</size>")
        );
        assert!(libvirt_xml("a'b", 1 << 20).is_err());
        assert!(libvirt_xml("../etc", 1 << 20).is_err());
    }

    #[test]
    fn region_file_checks_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r");
        std::fs::write(&p, vec![0u8; 3000]).unwrap();
        assert!(matches!(
            region_file(&p),
            Err(VmConfigError::NotPowerOfTwo { size: 3000, .. })
        ));
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        let (abs, size) = region_file(&p).unwrap();
        assert!(abs.is_absolute());
        assert_eq!(size, 4096);
    }
}
