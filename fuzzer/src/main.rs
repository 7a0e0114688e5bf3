//! `fuzzer`: build, fuzz and replay against student HTTP servers.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod assets;
mod compile;
mod hex;
mod port;
mod preload;
mod run;
mod send;
mod showmap;
mod target;

#[derive(Parser)]
#[command(
    name = "fuzzer",
    version,
    about = "Fuzz your pserv HTTP server: build it with coverage, fuzz it, keep AFL-style crashes/ and hangs/",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    fuzz: FuzzArgs,
}

#[derive(clap::Args)]
struct FuzzArgs {
    #[command(flatten)]
    build: compile::BuildArgs,
    /// Only print the summary of an existing output folder.
    #[arg(short = 'r', long, value_name = "OUT")]
    summary: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Build the instrumented server only (into OUT/server-fuzz) and test-run it.
    Build {
        #[command(flatten)]
        build: compile::BuildArgs,
        /// The server's arguments; {port} and {root} are filled in.
        #[arg(long, value_name = "ARGS", default_value = target::DEFAULT_ARGS, allow_hyphen_values = true)]
        server_args: String,
    },
    /// Run the instrumented server once on stdin and print the covered map entries.
    Showmap(showmap::Args),
    /// Send stdin to a listening server on one TCP connection and print the reply.
    Send(send::Args),
    /// Hex dump of a file: offsets, 24 bytes per row, ASCII column.
    Hex {
        /// The file to dump (e.g. a crash file).
        file: PathBuf,
    },
    /// Run a server once under the sockfuzz preload with stdin as the client's bytes.
    Run(run::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Build { build, server_args }) => build_and_check(&build, &server_args).map(|_| ExitCode::SUCCESS),
        Some(Command::Showmap(args)) => showmap::main(&args),
        Some(Command::Send(args)) => send::main(&args),
        Some(Command::Hex { file }) => hex::main(&file),
        Some(Command::Run(args)) => run::main(&args),
        None => build_and_check(&cli.fuzz.build, target::DEFAULT_ARGS).map(|_| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Build, then the start-up check of every built binary.
fn build_and_check(build: &compile::BuildArgs, server_args: &str) -> anyhow::Result<Vec<PathBuf>> {
    let built = compile::build(build)?;
    let root = build.out_dir.join("check-root");
    assets::write_root(&root)?;
    for binary in &built {
        showmap::check(&target::Target::new(binary.clone(), Some(server_args)), &root)?;
    }
    Ok(built)
}
