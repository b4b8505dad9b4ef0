//! Host side: creating, inspecting and removing region files.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use transport::layout::RegionHeader;
use transport::{ChannelState, ChannelStatus, Region, RegionConfig};

use crate::size::human_size;
use crate::sizing::{self, SizeRequest, SizingError};

/// Errors of the host-side commands.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No layout fits the requested size.
    #[error(transparent)]
    Sizing(#[from] SizingError),
    /// The file exists and `force` was not given.
    #[error(
        "{0} already exists; pass --force to format it again (a VM using it sees the new region)"
    )]
    Exists(PathBuf),
    /// `--hugetlbfs` was given for a path that is not on hugetlbfs.
    #[error(
        "{path} is not on a hugetlbfs mount (found file system type {fs_type:#x}); mount one, e.g. `mount -t hugetlbfs none /dev/hugepages`"
    )]
    NotHugetlbfs {
        /// The region path.
        path: PathBuf,
        /// The file system's magic number.
        fs_type: i64,
    },
    /// On hugetlbfs the file size must be a multiple of the huge page size.
    #[error("size {size} bytes is not a multiple of the huge page size {page} bytes of {path}")]
    HugePageMultiple {
        /// The region path.
        path: PathBuf,
        /// The requested size.
        size: u64,
        /// The mount's huge page size.
        page: u64,
    },
    /// A live worker holds the region that was to be removed.
    #[error("{path} is served by the live worker pid {pid}; stop it first or pass --force")]
    InUse {
        /// The region path.
        path: PathBuf,
        /// The worker's pid.
        pid: u32,
    },
    /// The file to remove is not a region.
    #[error("{path} does not hold a region ({source}); pass --force to remove it anyway")]
    NotARegion {
        /// The path.
        path: PathBuf,
        /// Why it is not a region.
        #[source]
        source: transport::Error,
    },
    /// An error of the transport (mapping, header).
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// A file-system error.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HostError + '_ {
    move |error| HostError::Io {
        path: path.to_owned(),
        error,
    }
}

/// How to create a region file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// Sizes asked for.
    pub request: SizeRequest,
    /// Require the file to lie on hugetlbfs (and its size to be a multiple of
    /// the huge page size).
    pub hugetlbfs: bool,
    /// Format the file even if it exists.
    pub force: bool,
    /// Permission bits for the file (e.g. `0o660`); `None` keeps the
    /// process's default.
    pub mode: Option<u32>,
}

/// Creates the region file at `path`: sizes it to the requested file size
/// (the BAR size), then formats it with the layout [`sizing::plan`] picks.
pub fn create(path: &Path, opts: &CreateOptions) -> Result<(Region, RegionConfig), HostError> {
    let config = sizing::plan(&opts.request)?;
    if path.exists() && !opts.force {
        return Err(HostError::Exists(path.to_owned()));
    }
    if opts.hugetlbfs {
        check_hugetlbfs(path, opts.request.file_size)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io(path))?;
    // Keep the inode (a VM that maps it stays connected) but drop old contents.
    file.set_len(0).map_err(io(path))?;
    file.set_len(opts.request.file_size).map_err(io(path))?;
    if let Some(mode) = opts.mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io(path))?;
    }
    drop(file);
    let region = Region::format_existing(path, &config)?;
    tracing::info!(
        path = %path.display(),
        size = opts.request.file_size,
        channels = config.channels,
        ring = config.cmd_ring_size,
        arena = config.arena_size,
        heap = config.heap_size,
        "region created"
    );
    Ok((region, config))
}

fn check_hugetlbfs(path: &Path, size: u64) -> Result<(), HostError> {
    use nix::sys::statfs::{HUGETLBFS_MAGIC, statfs};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let st = statfs(dir).map_err(|e| HostError::Io {
        path: dir.to_owned(),
        error: e.into(),
    })?;
    if st.filesystem_type() != HUGETLBFS_MAGIC {
        return Err(HostError::NotHugetlbfs {
            path: path.to_owned(),
            fs_type: st.filesystem_type().0 as i64,
        });
    }
    let page = st.block_size() as u64;
    if page == 0 || !size.is_multiple_of(page) {
        return Err(HostError::HugePageMultiple {
            path: path.to_owned(),
            size,
            page,
        });
    }
    Ok(())
}

/// Everything `inspect` shows about a region.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The region file.
    pub path: PathBuf,
    /// Size of the file (the BAR size).
    pub file_size: u64,
    /// The validated header.
    pub header: RegionHeader,
    /// Pid of the worker holding the lease (0: none).
    pub worker_pid: u32,
    /// Whether that pid is a live process on this host.
    pub worker_alive: bool,
    /// The worker's heartbeat counter.
    pub worker_heartbeat: u64,
    /// Every channel's state.
    pub channels: Vec<ChannelStatus>,
}

/// Opens the region at `path` and takes a snapshot of its shared state.
pub fn inspect(path: &Path) -> Result<Inspection, HostError> {
    let region = Region::open(path)?;
    let file_size = fs::metadata(path).map_err(io(path))?.len();
    let channels = (0..region.channel_count())
        .map(|i| region.status(i))
        .collect::<Result<Vec<_>, _>>()?;
    let worker_pid = region.worker_pid();
    Ok(Inspection {
        path: path.to_owned(),
        file_size,
        header: *region.header(),
        worker_pid,
        worker_alive: worker_pid != 0 && pid_alive(worker_pid),
        worker_heartbeat: region.worker_heartbeat(),
        channels,
    })
}

/// Whether a process with this pid exists here.
pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

fn state_name(state: ChannelState) -> String {
    match state {
        ChannelState::Free => "free".into(),
        ChannelState::Claimed => "claimed".into(),
        ChannelState::Closing => "closing".into(),
        ChannelState::Invalid(v) => format!("invalid({v})"),
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.header;
        let magic = String::from_utf8_lossy(&h.magic);
        writeln!(f, "region:      {}", self.path.display())?;
        writeln!(
            f,
            "file size:   {} bytes ({})",
            self.file_size,
            human_size(self.file_size)
        )?;
        writeln!(
            f,
            "header:      magic {:?}, version {}, header size {} bytes",
            magic.trim_end_matches('\0'),
            h.version,
            h.header_size
        )?;
        writeln!(
            f,
            "layout:      {} bytes used ({}), {} channel(s) from offset {}, stride {}",
            h.total_size,
            human_size(h.total_size),
            h.channel_count,
            h.channel_offset,
            h.channel_stride
        )?;
        writeln!(
            f,
            "rings:       command {} bytes, response {} bytes",
            h.cmd_ring_size, h.resp_ring_size
        )?;
        writeln!(
            f,
            "arena:       {} bytes ({}) per channel",
            h.arena_size,
            human_size(h.arena_size)
        )?;
        writeln!(
            f,
            "heap:        {} bytes ({}) at offset {}",
            h.heap_size,
            human_size(h.heap_size),
            h.heap_offset
        )?;
        let worker = match (self.worker_pid, self.worker_alive) {
            (0, _) => "none".to_owned(),
            (pid, true) => format!("pid {pid} (alive)"),
            (pid, false) => format!("pid {pid} (not running here)"),
        };
        writeln!(
            f,
            "worker:      {worker}, heartbeat {}",
            self.worker_heartbeat
        )?;
        writeln!(
            f,
            "{:<8} {:<12} {:>10} {:>10} {:>12}",
            "channel", "state", "generation", "owner pid", "heartbeat"
        )?;
        for c in &self.channels {
            writeln!(
                f,
                "{:<8} {:<12} {:>10} {:>10} {:>12}",
                c.index,
                state_name(c.state),
                c.generation,
                c.owner_pid,
                c.heartbeat
            )?;
        }
        Ok(())
    }
}

/// Removes the region file at `path`. Without `force`, refuses a file that
/// is not a region or that a live worker serves.
pub fn remove(path: &Path, force: bool) -> Result<(), HostError> {
    if !force {
        match Region::open(path) {
            Ok(region) => {
                let pid = region.worker_pid();
                if pid != 0 && pid != std::process::id() && pid_alive(pid) {
                    return Err(HostError::InUse {
                        path: path.to_owned(),
                        pid,
                    });
                }
            }
            Err(transport::Error::Io { path, error }) => {
                return Err(HostError::Io { path, error });
            }
            Err(source) => {
                return Err(HostError::NotARegion {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    fs::remove_file(path).map_err(io(path))?;
    tracing::info!(path = %path.display(), "region removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(size: u64) -> CreateOptions {
        CreateOptions {
            request: SizeRequest::new(size),
            hugetlbfs: false,
            force: false,
            mode: None,
        }
    }

    #[test]
    fn create_sizes_the_file_and_formats_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let (region, config) = create(&path, &opts(16 << 20)).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 16 << 20);
        assert_eq!(region.channel_count(), 4);
        assert_eq!(region.header().arena_size, config.arena_size);
        drop(region);
        let reopened = Region::open(&path).unwrap();
        assert_eq!(reopened.header().total_size, config.total_size());
    }

    #[test]
    fn create_refuses_existing_files_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        create(&path, &opts(1 << 20)).unwrap();
        let e = create(&path, &opts(1 << 20)).unwrap_err();
        assert!(matches!(e, HostError::Exists(_)), "{e}");
        let again = CreateOptions {
            force: true,
            mode: Some(0o640),
            ..opts(2 << 20)
        };
        create(&path, &again).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 2 << 20);
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn create_reports_sizes_that_do_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let e = create(&path, &opts(3 << 20)).unwrap_err();
        assert!(e.to_string().contains("not a power of two"), "{e}");
        assert!(!path.exists());
    }

    #[test]
    fn hugetlbfs_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let e = create(
            &path,
            &CreateOptions {
                hugetlbfs: true,
                ..opts(16 << 20)
            },
        )
        .unwrap_err();
        assert!(matches!(e, HostError::NotHugetlbfs { .. }), "{e}");
    }

    #[test]
    fn inspect_shows_header_channels_and_worker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let (region, _) = create(&path, &opts(1 << 20)).unwrap();
        let guest = region.claim().unwrap();
        guest.beat();
        region.acquire_worker(std::process::id()).unwrap();
        region.beat_worker();
        let report = inspect(&path).unwrap();
        assert_eq!(report.channels.len(), 4);
        assert_eq!(report.channels[0].state, ChannelState::Claimed);
        assert!(report.worker_alive);
        let text = report.to_string();
        let me = std::process::id();
        assert!(
            text.contains("file size:   1048576 bytes (1 MiB)"),
            "{text}"
        );
        assert!(text.contains("magic \"AVA-SHM\", version 3"), "{text}");
        assert!(text.contains("heap:        "), "{text}");
        assert!(
            text.contains(&format!("worker:      pid {me} (alive), heartbeat 1")),
            "{text}"
        );
        let row0 = text.lines().find(|l| l.starts_with("0 ")).unwrap();
        let cols: Vec<_> = row0.split_whitespace().collect();
        assert_eq!(cols, ["0", "claimed", "0", &me.to_string(), "2"]);
        let row3 = text.lines().find(|l| l.starts_with("3 ")).unwrap();
        assert_eq!(
            row3.split_whitespace().collect::<Vec<_>>(),
            ["3", "free", "0", "0", "0"]
        );
    }

    #[test]
    fn remove_refuses_non_regions_and_live_workers() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        fs::write(&junk, vec![0u8; 8192]).unwrap();
        let e = remove(&junk, false).unwrap_err();
        assert!(matches!(e, HostError::NotARegion { .. }), "{e}");
        remove(&junk, true).unwrap();
        assert!(!junk.exists());

        let path = dir.path().join("r");
        let (region, _) = create(&path, &opts(1 << 20)).unwrap();
        // pid 1 is alive on any Linux system.
        region.acquire_worker(1).unwrap();
        let e = remove(&path, false).unwrap_err();
        assert!(matches!(e, HostError::InUse { pid: 1, .. }), "{e}");
        region.release_worker(1);
        remove(&path, false).unwrap();
        assert!(!path.exists());
    }
}
