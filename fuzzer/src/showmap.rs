//! One run of the instrumented server with a coverage map: `fuzzer showmap`, and the run
//! the start-up check (`check`) makes.

use crate::assets;
use crate::run::{self, Finished, Limits};
use crate::target::Target;
use crate::{build, port};
use anyhow::{Context, Result};
use contract::env;
use libafl_bolts::shmem::{ShMem, ShMemProvider, UnixShMemProvider};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Map size of our runtime's gcc mode (the largest any of our binaries reports).
pub use contract::MAP_SIZE;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub build: build::BuildArgs,
    /// Use this already built, instrumented server instead of building --src-dir.
    #[arg(long, value_name = "PATH")]
    pub server: Option<PathBuf>,
    /// The server's arguments; {port} and {root} are filled in.
    #[arg(long, value_name = "ARGS", default_value = crate::target::DEFAULT_ARGS, allow_hyphen_values = true)]
    pub server_args: String,
}

/// `fuzzer showmap`: print `edge:count` for every covered map entry, like afl-showmap.
pub fn main(args: &Args) -> Result<ExitCode> {
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

/// Run `target` on `port` once on `input` under the preload with a fresh coverage map; returns the
/// covered entries with AFL-bucketed hit counts.
pub fn run_with_map(target: &Target, root: &Path, input: &[u8], port: u16) -> Result<(Finished, Vec<(usize, u8)>)> {
    let mut provider = UnixShMemProvider::new().context("cannot create shared memory")?;
    let shmem = provider.new_shmem(MAP_SIZE).context("cannot create the coverage map (shared memory)")?;
    let id = shmem.id().to_string();
    let root = root.canonicalize().with_context(|| format!("the web root {} is missing", root.display()))?;
    let command = target.command(port, &root);
    let limits = Limits {
        listen: Duration::from_secs(5),
        run: Duration::from_secs(5),
        mem_mb: target.mem_limit_mb,
        stacks: false,
    };
    let mut envs = vec![(env::name(env::AFL_SHM_ID), id.as_ref())];
    if target.serves_root() {
        envs.push((env::name(env::ROOT), root.as_os_str()));
    }
    let finished = run::run(&command, &envs, target.cwd.as_deref(), Some(input), limits, true)?;
    let map = shmem.iter().enumerate().filter(|(_, &c)| c != 0).map(|(i, &c)| (i, bucket(c))).collect();
    Ok((finished, map))
}

/// AFL's hit-count classes: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+.
fn bucket(count: u8) -> u8 {
    match count {
        0..=3 => count,
        4..=7 => 4,
        8..=15 => 8,
        16..=31 => 16,
        32..=127 => 32,
        _ => 128,
    }
}
