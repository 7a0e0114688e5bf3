//! `fuzzer build`: stages 1 and 2 alone, the build and the start-up check.
use std::process::ExitCode;

use anyhow::Result;

use crate::build::{self, BuildArgs, Built};
use crate::check;
use crate::runner::{preload, target};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    build: BuildArgs,
    /// The server's arguments; {port} and {root} are filled in.
    #[arg(long, value_name = "ARGS", default_value = target::DEFAULT_ARGS, allow_hyphen_values = true)]
    server_args: String,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    build_and_check(&args.build, &args.server_args, preload::DEFAULT_MEM_LIMIT_MB)?;
    Ok(ExitCode::SUCCESS)
}

/// Build, then the start-up check of every built binary.
pub fn build_and_check(build: &BuildArgs, server_args: &str, mem_limit_mb: u64) -> Result<(Built, check::Ending)> {
    let built = build::build(build)?;
    let ending = check::check_builds(&built, &build.out_dir, server_args, mem_limit_mb)?;
    Ok((built, ending))
}
