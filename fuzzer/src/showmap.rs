//! One run of the instrumented server with a coverage map: `fuzzer showmap`, and the
//! start-up check that the server can be driven at all.

use crate::assets::{self, CHECK_REQUEST};
use crate::run::{self, Finished, Limits, Outcome};
use crate::target::Target;
use crate::{compile, port};
use anyhow::{bail, Context, Result};
use libafl_bolts::shmem::{ShMem, ShMemProvider, UnixShMemProvider};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Map size of our runtime's gcc mode (the largest any of our binaries reports).
pub const MAP_SIZE: usize = 65536;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub build: compile::BuildArgs,
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
        Some(path) => (path.clone(), compile::working_copy(&args.build)?),
        // The plain build is the one whose map matters here.
        None => {
            let built =
                compile::build(&compile::BuildArgs { sanitizer: compile::Sanitizer::None, ..args.build.clone() })?;
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
    let mut envs = vec![("__AFL_SHM_ID", id.as_ref())];
    if target.serves_root() {
        envs.push(("SOCKFUZZ_ROOT", root.as_os_str()));
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

/// The start-up check: one plain request must be answered, end the run cleanly and record
/// coverage. Returns the number of covered map entries.
pub fn check(target: &Target, root: &Path) -> Result<usize> {
    println!("[check] test run of {} under sockfuzz...", target.binary.display());
    let port = port::free_port()?;
    let (finished, map) = run_with_map(target, root, CHECK_REQUEST, port).with_context(|| {
        let cwd = target
            .cwd
            .as_ref()
            .map(|d| format!(" (it ran in {}; --cwd DIR runs it in a copy of another folder)", d.display()));
        format!("the test run failed: the fuzzer cannot drive this server{}", cwd.unwrap_or_default())
    })?;
    let request = String::from_utf8_lossy(CHECK_REQUEST.split(|&b| b == b'\r').next().unwrap_or_default()).into_owned();
    match finished.outcome {
        Outcome::Ok => {}
        Outcome::Hang | Outcome::LeftOpen => bail!(
            "the test run did not end: {} (the request was `{request}`). An HTTP/1.0 connection must be \
             closed after the response.",
            finished.outcome
        ),
        ref outcome => bail!(
            "the test run failed on a plain `{request}`: {}. Fix this first; replay it with \
             `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | fuzzer run -- {}`\n{}",
            outcome,
            target.binary.display(),
            run::tail(&finished.stderr, 10)
        ),
    }
    // In a network namespace of its own, each copy may keep a fixed port.
    if finished.port != port && crate::preload::netns() != "1" {
        let how = if target.args.contains("{port}") {
            format!("passed as {{port}} in the server arguments `{}`", target.args)
        } else {
            format!("the server arguments `{}` have no {{port}}", target.args)
        };
        bail!(
            "the server listened on port {}, not on the port the fuzzer chose ({port}; {how}). The fuzzer \
             runs several copies of the server at once (one per core, and one for CmpLog), each on its own \
             port (this machine does not let it give each copy a network namespace of its own, where \
             a fixed port would do): make the server take its port from its command line, and put \
             {{port}} there in --server-args",
            finished.port
        );
    }
    if finished.reply.is_empty() {
        bail!("the test run got no reply: the server closed the connection without answering `{request}`");
    }
    if map.is_empty() {
        bail!(
            "the test run recorded no coverage: {} is not instrumented (was it built with fuzzer-cc?)",
            target.binary.display()
        );
    }
    let status_line = finished.reply.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(&status_line[..status_line.len().min(80)]).into_owned();
    println!("[check] the server answered `{status_line}`; {} coverage map entries hit", map.len());
    Ok(map.len())
}
