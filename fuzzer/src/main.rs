//! `fuzzer`: build, fuzz and replay against student HTTP servers.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod hex;
mod preload;
mod run;
mod send;

#[derive(Parser)]
#[command(name = "fuzzer", version, about = "Fuzz a pserv HTTP server with LibAFL")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        Command::Send(args) => send::main(&args),
        Command::Hex { file } => hex::main(&file),
        Command::Run(args) => run::main(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
