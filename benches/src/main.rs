//! `ava-bench`: benchmarks of the remoting stack, each figure printed beside
//! a baseline measured in the same run.

mod all;
mod clpeak_bench;
mod cuda_bench;
mod fleet;
mod groups_bench;
mod idle_bench;
mod opencl_bench;
mod peer;
mod report;
mod scaling_bench;
mod socket_bridge;
mod transport_bench;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Benchmarks of the shared-memory remoting stack, each beside its baseline.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Examples:\n  ava-bench all --quick --out bench-report\n  ava-bench transport --quick\n  ava-bench transport --json results.json\n  ava-bench opencl --quick\n  ava-bench opencl --quick --transport tcp\n  ava-bench groups --quick\n  ava-bench scaling --quick --json scaling.json --svg docs/scaling.svg\n  ava-bench idle --quick\n  ava-bench clpeak --heap-size 1610612736\n  ava-bench clpeak -- --transfer-bandwidth --kernel-latency\n  ava-bench cuda --quick --native-lib target/release/libava_cuda_standin.so"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transport: ping-pong limit, ring RTT vs Unix/TCP sockets, message
    /// throughput, arena bandwidth vs memcpy (two processes on two cores).
    Transport {
        /// Fewer iterations: finishes in well under 20 seconds.
        #[arg(long)]
        quick: bool,
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// The two cores to pin the two processes to.
        #[arg(long, value_delimiter = ',', default_value = "0,1")]
        cores: Vec<usize>,
    },
    /// OpenCL: a cheap query, a small kernel launch + finish, and write/read
    /// bandwidth by size, natively and remoted through a real worker.
    Opencl {
        /// Fewer iterations.
        #[arg(long)]
        quick: bool,
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// The host's OpenCL library (the native baseline).
        #[arg(long, default_value = "libOpenCL.so.1")]
        native_lib: String,
        /// `shm`: the rings alone. `tcp`, `unix`: only the small call,
        /// natively, over the rings and over that socket (through a socket
        /// bridge to the same worker). Without it: every figure over the
        /// rings, and the small call over TCP and a Unix socket as well.
        #[arg(long, value_enum)]
        transport: Option<opencl_bench::Transport>,
    },
    /// CUDA: a small call, empty-kernel launch + synchronize, 10,000
    /// asynchronous launches, and copies by size from pageable and
    /// page-locked memory, natively and remoted through a real worker on
    /// the same driver (the stand-in test double where no GPU is).
    Cuda {
        /// Fewer iterations.
        #[arg(long)]
        quick: bool,
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// The host's CUDA driver (the native baseline, and the worker's).
        #[arg(long, default_value = "libcuda.so.1")]
        native_lib: String,
    },
    /// Isolation groups: two VMs' guests making small calls and kernel
    /// launches, served by one executor each, then by one shared executor.
    Groups {
        /// Fewer iterations.
        #[arg(long)]
        quick: bool,
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
    /// Scaling: aggregate small-call throughput and latency with 1, 2, 4,
    /// 8 and 16 guests (one VM each) beside one guest's, and small calls
    /// beside a VM blocked on a 2-second kernel.
    Scaling {
        /// Shorter measurements (1 s per count).
        #[arg(long)]
        quick: bool,
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// Also plot the per-count figures as SVG to this file.
        #[arg(long, value_name = "PATH")]
        svg: Option<PathBuf>,
    },
    /// Idle cost: the worker's and 16 idle guests' CPU, and the first
    /// call after a second of idleness, with doorbells (`--wait adaptive`)
    /// beside polling (`--wait poll`).
    Idle {
        /// 10 s per configuration instead of 20.
        #[arg(long)]
        quick: bool,
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
    /// Unmodified clpeak natively, then remoted through a real worker:
    /// every figure beside native, and the goals (each transfer bandwidth
    /// at least 90% of native, kernel launch latency within native + 2 µs).
    Clpeak {
        /// Also write the results as JSON to this file.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// The worker's buffer heap (`ava-worker --heap-size`, bytes):
        /// buffers that fit are read, written and mapped in place.
        #[arg(long, value_name = "BYTES")]
        heap_size: Option<u64>,
        /// clpeak's own arguments (after `--`); none runs all of its tests.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Every benchmark (transport, opencl, scaling, idle, and cuda on the
    /// host's driver or, where there is none, the stand-in test double),
    /// with a progress bar; writes DIR/results.json and DIR/report.md with
    /// SVG plots, naming the machine.
    All {
        /// The quick form of every benchmark (about 3 minutes here).
        #[arg(long)]
        quick: bool,
        /// Where the results, the report and the plots go.
        #[arg(long, value_name = "DIR", default_value = "bench-report")]
        out: PathBuf,
        /// Also write the documentation's results page from this run (the
        /// report, with how to reproduce it and links into DIR), e.g.
        /// `--out docs/report --docs docs/benchmarks.md`.
        #[arg(long, value_name = "FILE")]
        docs: Option<PathBuf>,
    },
    /// The other side of a two-process measurement (started by the benchmark itself).
    #[command(hide = true)]
    Peer {
        /// Which peer to play.
        role: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Transport { quick, json, cores } => {
            anyhow::ensure!(cores.len() == 2, "--cores takes exactly two cores");
            let results = transport_bench::run(quick, [cores[0], cores[1]])?;
            report::print_table("transport", &results);
            if let Some(path) = json {
                report::write_json(&path, &results)?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Opencl {
            quick,
            json,
            native_lib,
            transport,
        } => {
            let results = opencl_bench::run_with(quick, &native_lib, transport)?;
            report::print_table("opencl", &results);
            if let Some(path) = json {
                report::write_json(&path, &results)?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Cuda {
            quick,
            json,
            native_lib,
        } => {
            let results = cuda_bench::run(quick, &native_lib)?;
            report::print_table("cuda", &results);
            if let Some(path) = json {
                report::write_json(&path, &results)?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Groups { quick, json } => {
            let results = groups_bench::run(quick)?;
            report::print_table("groups", &results);
            if let Some(path) = json {
                report::write_json(&path, &results)?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Scaling { quick, json, svg } => {
            let results = scaling_bench::run(quick, svg.as_deref())?;
            report::print_table("scaling", &results);
            if let Some(path) = json {
                report::write_json(&path, &results)?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Idle { quick, json } => {
            let results = idle_bench::run(quick)?;
            report::print_table("idle", &results);
            if let Some(path) = json {
                report::write_json(&path, &results)?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Clpeak {
            json,
            heap_size,
            args,
        } => {
            let (results, goals) = clpeak_bench::run(&args, heap_size)?;
            report::print_table("clpeak", &results);
            println!("\ngoals");
            for g in &goals {
                println!("  {g}");
            }
            if let Some(path) = json {
                report::write_json(&path, &results)?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::All { quick, out, docs } => all::run(quick, &out, docs.as_deref()),
        Command::Peer { role, args } => peer::run(&role, &args),
    }
}
