//! `fuzzer triage OUT`: group a campaign's crash and hang files into bugs (`report::triage` does
//! the work; the command prints the list).
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// At most this long, as after a campaign: every file once while it lasts, then the other
    /// runs where they tell how a bug reproduces (the files left over are listed, not lost).
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<u64>,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    // Asked for by hand: every file `--runs` times, however long it takes, unless bounded.
    let groups = triage::triage(&args.out, args.runs, args.seconds.map(Duration::from_secs))?;
    print!("{}", bugs::list(&groups));
    println!("[triage] report: {}", args.out.join("triage/report.md").display());
    Ok(ExitCode::SUCCESS)
}
