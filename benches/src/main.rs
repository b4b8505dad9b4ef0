//! `ava-bench`: benchmarks of the remoting stack, each figure printed beside
//! a baseline measured in the same run.

mod peer;
mod report;
mod transport_bench;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Benchmarks of the shared-memory remoting stack, each beside its baseline.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Examples:\n  ava-bench transport --quick\n  ava-bench transport --json results.json"
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
        Command::Peer { role, args } => peer::run(&role, &args),
    }
}
