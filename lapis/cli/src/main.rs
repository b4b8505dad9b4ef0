//! The `lapis` command line tool: check, explain and (later) generate.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use lapis::codegen::{self, Side};

/// The LAPIS specification language tool.
#[derive(Parser)]
#[command(
    name = "lapis",
    version,
    about = "Check, explain and generate code from LAPIS API specifications",
    after_help = "Examples:\n  \
        lapis check specs/opencl.lapis specs/cuda.lapis\n  \
        lapis explain specs/cuda.lapis cuMemcpyDtoHAsync\n  \
        lapis generate specs/opencl.lapis --side guest > guest_gen.rs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check specifications; print a summary or the errors.
    #[command(after_help = "Example:\n  lapis check specs/cuda.lapis\n\n\
        Exits with status 1 and prints every error (file:line:col) if a file is invalid.")]
    Check {
        /// Specification files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Describe in plain English what the generated code does for a function.
    #[command(after_help = "Example:\n  lapis explain specs/cuda.lapis cuMemcpyDtoHAsync")]
    Explain {
        /// The specification file.
        file: PathBuf,
        /// The function to explain.
        function: String,
    },
    /// Generate the Rust code of one side of the remoting.
    #[command(after_help = "Example:\n  lapis generate specs/opencl.lapis --side worker")]
    Generate {
        /// The specification file.
        file: PathBuf,
        /// Which side to generate.
        #[arg(long, value_enum)]
        side: SideArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SideArg {
    /// The guest library.
    Guest,
    /// The host worker.
    Worker,
    /// Only the declarations and the function table.
    Table,
}

fn load(path: &PathBuf) -> Result<lapis::Spec, ExitCode> {
    lapis::load(path).map_err(|d| {
        d.emit_to_stderr();
        eprintln!(
            "{}: {} error{}",
            path.display(),
            d.len(),
            if d.len() == 1 { "" } else { "s" }
        );
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { files } => {
            let mut status = ExitCode::SUCCESS;
            for f in &files {
                match load(f) {
                    Ok(spec) => println!(
                        "{}: ok: api `{}` version {}, {} functions, {} unsupported",
                        f.display(),
                        spec.api.name,
                        spec.api.version,
                        spec.functions.len(),
                        spec.unsupported_count()
                    ),
                    Err(code) => status = code,
                }
            }
            status
        }
        Command::Explain { file, function } => {
            let spec = match load(&file) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match lapis::explain::explain(&spec, &function) {
                Some(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("error: `{}` has no function `{function}`", file.display());
                    ExitCode::from(1)
                }
            }
        }
        Command::Generate { file, side } => {
            let spec = match load(&file) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let side = match side {
                SideArg::Guest => Side::Guest,
                SideArg::Worker => Side::Worker,
                SideArg::Table => Side::Table,
            };
            match codegen::generate(&spec, side) {
                Ok(code) => {
                    print!("{code}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
