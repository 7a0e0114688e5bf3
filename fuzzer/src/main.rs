//! `fuzzer`: build, fuzz and replay against student HTTP servers. Only the command line: each
//! command is a module of `fuzzer::cmd`, which takes its arguments and calls the library.
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fuzzer::cmd;

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
    fuzz: cmd::fuzz::Args,
}

#[derive(Subcommand)]
enum Command {
    /// Build the instrumented server only (into OUT/server-fuzz) and test-run it.
    Build(cmd::build::Args),
    /// Run the instrumented server once on stdin and print the covered map entries.
    Showmap(cmd::showmap::Args),
    /// Send stdin to a listening server and print the reply: raw bytes on one TCP connection, a
    /// comux file on its connections.
    Send(cmd::send::Args),
    /// Write seeds generated from the HTTP grammar into a folder (to look at, or to reuse).
    Grammar(cmd::grammar::Args),
    /// Hex dump of a file: offsets, 24 bytes per row, ASCII column; a comux file chunk by chunk.
    Hex(cmd::hex::Args),
    /// Run a server once under the sockfuzz preload with stdin as the client's bytes.
    Run(cmd::run::Args),
    /// Group a campaign's crash and hang files into bugs: replay, locate, minimize, report.
    Triage(cmd::triage::Args),
    /// Charts of a campaign over time (execs/s, paths, crashes and hangs per client) into OUT/plots.
    Plot(cmd::plot::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Build(args)) => cmd::build::run(&args),
        Some(Command::Showmap(args)) => cmd::showmap::run(&args),
        Some(Command::Send(args)) => cmd::send::run(&args),
        Some(Command::Grammar(args)) => cmd::grammar::run(&args),
        Some(Command::Hex(args)) => cmd::hex::run(&args),
        Some(Command::Run(args)) => cmd::run::run(&args),
        Some(Command::Triage(args)) => cmd::triage::run(&args),
        Some(Command::Plot(args)) => cmd::plot::run(&args),
        None => cmd::fuzz::run(&cli.fuzz),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
