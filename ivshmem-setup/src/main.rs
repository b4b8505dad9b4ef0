//! `ivshmem-setup`: host and guest tooling for ivshmem regions.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use transport::Region;

use ivshmem_setup::host::{self, CreateOptions};
use ivshmem_setup::peer::{self, EchoOptions, PingOptions};
use ivshmem_setup::signals::StopSignals;
use ivshmem_setup::size::{human_size, parse_size};
use ivshmem_setup::sizing::{DEFAULT_CHANNELS, DEFAULT_RING_SIZE, SizeRequest};
use ivshmem_setup::vmconfig;

/// Host and guest tooling for ivshmem shared-memory regions.
///
/// On the host: create a region file, print the QEMU or libvirt
/// configuration that gives a VM the device, inspect or remove the region.
/// In the guest: find the device and its region (`probe`), install the
/// OpenCL guest library as an ICD (`install-icd`). Both ends:
/// `ping` (guest) and `echo` (host) prove the path works.
#[derive(Debug, Parser)]
#[command(name = "ivshmem-setup", version, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  host$  ivshmem-setup create /dev/shm/ava-vm1 --size 16M
  host$  qemu-system-x86_64 ... $(ivshmem-setup qemu-args /dev/shm/ava-vm1)
  host$  ivshmem-setup libvirt-xml /dev/shm/ava-vm1
  guest# ivshmem-setup probe
  host$  ivshmem-setup echo /dev/shm/ava-vm1 &
  guest# ivshmem-setup ping $(ivshmem-setup probe) --count 1000
  host$  ivshmem-setup inspect /dev/shm/ava-vm1
  host$  ivshmem-setup remove /dev/shm/ava-vm1

Logging goes to stderr; set RUST_LOG (e.g. RUST_LOG=debug) to change it.";

#[derive(Debug, Subcommand)]
enum Command {
    /// Host: create a region file of SIZE bytes (the BAR size) and format it.
    #[command(after_help = "\
Examples:
  ivshmem-setup create /dev/shm/ava-vm1 --size 16M
  ivshmem-setup create /dev/shm/ava-vm2 --size 64M --channels 8 --ring-size 256K
  ivshmem-setup create /dev/hugepages/ava-vm3 --size 1G --hugetlbfs --mode 660")]
    Create {
        /// The region file, e.g. /dev/shm/ava-vm1.
        path: PathBuf,
        /// File size = BAR size, a power of two (e.g. 16M, 64M, 1G).
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// Channels (guest processes or threads served at once).
        #[arg(long, default_value_t = DEFAULT_CHANNELS)]
        channels: u32,
        /// Size of each command and response ring (a power of two).
        #[arg(long, value_parser = parse_size, default_value_t = DEFAULT_RING_SIZE)]
        ring_size: u64,
        /// Size of each channel's data arena (whole pages); default: fill the file evenly.
        #[arg(long, value_parser = parse_size)]
        arena_size: Option<u64>,
        /// Require PATH to be on hugetlbfs and SIZE a multiple of its page size.
        #[arg(long)]
        hugetlbfs: bool,
        /// Permission bits in octal, e.g. 660 (for a worker and QEMU running as different users).
        #[arg(long, value_parser = parse_mode)]
        mode: Option<u32>,
        /// Format PATH even if it exists (a VM already mapping it sees the new region).
        #[arg(long)]
        force: bool,
    },
    /// Host: show a region's header, every channel's state and the worker's lease.
    #[command(after_help = "Example:\n  ivshmem-setup inspect /dev/shm/ava-vm1")]
    Inspect {
        /// The region file.
        path: PathBuf,
    },
    /// Host: delete a region file (refused while a live worker serves it).
    #[command(after_help = "Example:\n  ivshmem-setup remove /dev/shm/ava-vm1")]
    Remove {
        /// The region file.
        path: PathBuf,
        /// Remove even a file that is not a region or that a worker serves.
        #[arg(long)]
        force: bool,
    },
    /// Host: print the QEMU arguments that give a VM the region as an ivshmem-plain device
    /// (or, with --doorbell, an ivshmem-doorbell device served by the worker).
    #[command(after_help = "\
Examples:
  qemu-system-x86_64 -machine q35 -m 2G ... $(ivshmem-setup qemu-args /dev/shm/ava-vm1)
  qemu-system-x86_64 -machine q35 -m 2G ... $(ivshmem-setup qemu-args --doorbell /dev/shm/ava-vm1)")]
    QemuArgs {
        /// The region file.
        path: PathBuf,
        /// Id of the memory-backend object (of the chardev with --doorbell).
        #[arg(long, default_value = vmconfig::DEFAULT_QEMU_ID)]
        id: String,
        /// An ivshmem-doorbell device whose server is the worker (on
        /// PATH.sock; start the worker first): the guest rings the worker
        /// instead of being polled.
        #[arg(long)]
        doorbell: bool,
    },
    /// Host: print the libvirt <shmem> element for the region (libvirt maps /dev/shm/NAME).
    #[command(after_help = "\
Example:
  ivshmem-setup libvirt-xml /dev/shm/ava-vm1 > shmem.xml
  virsh attach-device --config VM shmem.xml")]
    LibvirtXml {
        /// The region file (libvirt expects it at /dev/shm/NAME).
        path: PathBuf,
        /// The shmem name; default: PATH's file name.
        #[arg(long)]
        name: Option<String>,
        /// An ivshmem-doorbell device whose server is the worker (on
        /// /dev/shm/NAME.sock).
        #[arg(long)]
        doorbell: bool,
    },
    /// Guest: find the ivshmem device, enable it and check the region in its BAR2.
    ///
    /// Prints the resource2 path of each usable device, the first one first,
    /// so that `$(ivshmem-setup probe)` is the region to use. Fails when there
    /// is no device, the region header is wrong or the BAR is too small.
    #[command(after_help = "\
Examples:
  ivshmem-setup probe
  AVA_REGION=$(ivshmem-setup probe) LD_PRELOAD=libava_opencl.so clinfo")]
    Probe {
        /// Root of the sysfs tree to scan.
        #[arg(long, default_value = "/sys")]
        sysfs: PathBuf,
    },
    /// Guest: install the OpenCL guest library as an installable client driver.
    ///
    /// Writes VENDORS/NAME holding the library's absolute path, so that
    /// programs linked with the system's ICD loader (ocl-icd) list the
    /// remoted platform beside any other. Example, in the VM:
    ///
    ///   ivshmem-setup install-icd --lib /usr/local/lib/libava_opencl.so
    ///   clinfo -l
    #[command(verbatim_doc_comment)]
    InstallIcd {
        /// The guest library (libava_opencl.so).
        #[arg(long)]
        lib: PathBuf,
        /// The ICD loader's vendors directory.
        #[arg(long, default_value = ivshmem_setup::icd::VENDORS_DIR)]
        vendors: PathBuf,
        /// The vendor file's name (must end in .icd).
        #[arg(long, default_value = "ava.icd")]
        name: String,
    },
    /// Guest (test peer): claim a channel and send numbered messages; expect each doubled.
    #[command(after_help = "\
Example:
  ivshmem-setup ping $(ivshmem-setup probe) --count 1000")]
    Ping {
        /// The region: resource2 in a guest, the region file on the host.
        path: PathBuf,
        /// Messages to send, one round trip each.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
        /// Seconds to wait for each answer.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Host (test peer): take the worker lease of the regions and answer every message.
    ///
    /// Serves every channel that guests claim, answering each 8-byte message
    /// with its number doubled. Runs until COUNT messages were answered (over
    /// all regions) or SIGINT/SIGTERM arrives, then prints its totals.
    #[command(after_help = "\
Examples:
  ivshmem-setup echo /dev/shm/ava-vm1
  ivshmem-setup echo /dev/shm/ava-vm1 /dev/shm/ava-vm2 --count 2000")]
    Echo {
        /// The region files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Exit after answering this many messages.
        #[arg(long)]
        count: Option<u64>,
        /// Reclaim a channel whose owner's heartbeat stood still this many seconds.
        #[arg(long, default_value_t = 30.0)]
        stale_after: f64,
    },
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let t = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!("'{text}' is not an octal mode like 660")),
    }
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("invalid {what} {s}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ivshmem-setup: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Create {
            path,
            size,
            channels,
            ring_size,
            arena_size,
            hugetlbfs,
            mode,
            force,
        } => {
            let opts = CreateOptions {
                request: SizeRequest {
                    file_size: size,
                    channels,
                    ring_size,
                    arena_size,
                },
                hugetlbfs,
                force,
                mode,
            };
            let (_, config) = host::create(&path, &opts)?;
            println!(
                "created {} ({}): {} channel(s), {} rings, {} arena each, {} buffer heap",
                path.display(),
                human_size(size),
                config.channels,
                human_size(config.cmd_ring_size),
                human_size(config.arena_size),
                human_size(config.heap_size)
            );
        }
        Command::Inspect { path } => print!("{}", host::inspect(&path)?),
        Command::Remove { path, force } => {
            host::remove(&path, force)?;
            println!("removed {}", path.display());
        }
        Command::QemuArgs { path, id, doorbell } => {
            let (abs, size) = vmconfig::region_file(&path)?;
            if doorbell {
                println!("{}", vmconfig::qemu_doorbell_args(&abs, &id)?);
            } else {
                println!("{}", vmconfig::qemu_args(&abs, size, &id)?);
            }
        }
        Command::LibvirtXml {
            path,
            name,
            doorbell,
        } => libvirt_xml(&path, name, doorbell)?,
        Command::Probe { sysfs } => {
            for dev in ivshmem_setup::probe(&sysfs)? {
                println!("{}", dev.resource.display());
            }
        }
        Command::InstallIcd { lib, vendors, name } => {
            let file = ivshmem_setup::icd::install(&lib, &vendors, &name)?;
            println!("installed {} -> {}", file.display(), lib.display());
        }
        Command::Ping {
            path,
            count,
            timeout,
        } => {
            let region = Region::open(&path)?;
            let opts = PingOptions {
                count,
                timeout: seconds(timeout, "--timeout")?,
                ..PingOptions::default()
            };
            let stats = peer::ping(&region, &opts)?;
            println!("{stats}");
            println!("ping OK");
        }
        Command::Echo {
            paths,
            count,
            stale_after,
        } => {
            let signals = StopSignals::install().context("watching SIGINT/SIGTERM")?;
            let regions = paths
                .iter()
                .map(|p| Region::open(p))
                .collect::<Result<Vec<_>, _>>()?;
            let opts = EchoOptions {
                count,
                stale_after: seconds(stale_after, "--stale-after")?,
                ..EchoOptions::default()
            };
            let stats = peer::echo(&regions, &opts, || match signals.received() {
                Some(sig) => {
                    tracing::info!("{sig} received, stopping");
                    true
                }
                None => false,
            })?;
            println!("{stats}");
        }
    }
    Ok(())
}

fn libvirt_xml(path: &Path, name: Option<String>, doorbell: bool) -> Result<()> {
    let (abs, size) = vmconfig::region_file(path)?;
    let Some(name) = name.or_else(|| vmconfig::default_libvirt_name(&abs)) else {
        bail!("{} has no file name; pass --name", abs.display());
    };
    let expected = Path::new("/dev/shm").join(&name);
    if abs != expected {
        tracing::warn!(
            "libvirt maps {} for <shmem name='{name}'>, not {}: create the region there",
            expected.display(),
            abs.display()
        );
    }
    if doorbell {
        print!("{}", vmconfig::libvirt_doorbell_xml(&name)?);
    } else {
        print!("{}", vmconfig::libvirt_xml(&name, size)?);
    }
    Ok(())
}
