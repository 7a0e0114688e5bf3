//! `fuzzer plot OUT`: charts of a campaign over time into `OUT/plots`.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// The campaign's output folder.
    out: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    crate::report::plot::main(&args.out)
}
