//! `fuzzer triage OUT`: group a campaign's crash and hang files into bugs.
use std::process::ExitCode;

use anyhow::Result;

pub use crate::report::triage::Args;

pub fn run(args: &Args) -> Result<ExitCode> {
    crate::report::triage::main(args)
}
