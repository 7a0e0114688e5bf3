//! `fuzzer triage OUT`: group a campaign's crash and hang files into bugs (`report::triage` does
//! the work; the command prints the list).
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::bugs;
use crate::report::triage;

#[derive(clap::Args)]
pub struct Args {
    /// The campaign's output folder.
    out: PathBuf,
    /// Replays of each crash and hang file (how often it reproduces).
    #[arg(long, value_name = "N", default_value_t = triage::RUNS)]
    runs: usize,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let groups = triage::triage(&args.out, args.runs)?;
    print!("{}", bugs::list(&groups));
    println!("[triage] report: {}", args.out.join("triage/report.md").display());
    Ok(ExitCode::SUCCESS)
}
