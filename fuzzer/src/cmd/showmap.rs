//! `fuzzer showmap`: the covered map entries of one run (`edge:count`), like afl-showmap.
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::runner::map::run_with_map;
use crate::runner::target::{self, Target};
use crate::{assets, build, port};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub build: build::BuildArgs,
    /// Use this already built, instrumented server instead of building --src-dir.
    #[arg(long, value_name = "PATH")]
    pub server: Option<PathBuf>,
    /// The server's arguments; {port} and {root} are filled in.
    #[arg(long, value_name = "ARGS", default_value = target::DEFAULT_ARGS, allow_hyphen_values = true)]
    pub server_args: String,
}

/// `fuzzer showmap`: print `edge:count` for every covered map entry, like afl-showmap.
pub fn run(args: &Args) -> Result<ExitCode> {
    let (binary, cwd) = match &args.server {
        Some(path) => (path.clone(), build::working_copy(&args.build)?),
        // The plain build is the one whose map matters here.
        None => {
            let built = build::build(&build::BuildArgs { sanitizer: build::Sanitizer::None, ..args.build.clone() })?;
            (built.plain, built.plain_cwd)
        }
    };
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).context("cannot read the input from stdin")?;
    let root = args.build.out_dir.join("showmap-root");
    assets::write_root(&root)?;
    let target = Target::new(binary, Some(&args.server_args)).in_dir(cwd);
    let (finished, map) = run_with_map(&target, &root, &input, port::free_port()?)?;
    for (edge, count) in map {
        println!("{edge:06}:{count}");
    }
    eprintln!("[showmap] {}", finished.outcome);
    Ok(ExitCode::SUCCESS)
}
