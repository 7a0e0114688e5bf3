//! `fuzzer run -- SERVER ARGS < INPUT`: one run of a server under the sockfuzz preload, with a
//! verdict in plain words (replaces the old `fuzz-rerun.sh`); `--gdb`: the same under gdb.
use std::ffi::{OsStr, OsString};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use contract::env;

use crate::runner::preload::{self, SIG_FD_LEAK, SIG_MEM_LEAK, SIG_TRAVERSAL};
use crate::runner::{self, Limits, Outcome};

#[derive(clap::Args)]
#[command(after_help = "Exit status: 0 the server answered and closed the connection; \
128+N it crashed with signal N; 124 it hung (kept the connection open, or read end-of-file \
in a loop); 140 (128+SIGUSR2) it opened a path outside the --root folder; 144 (128+SIGSTKFLT) \
it kept descriptors open after each play of the input (a descriptor leak); 158 (128+SIGPWR) an \
ASan build leaked memory (LeakSanitizer's report is on stderr); 1 it could not be driven (never \
listened, exited early).")]
pub struct Args {
    /// The web root the server was given: a path it opens outside that folder (through `..`, an
    /// encoded `%2e%2e`, or a symlink) ends the run as a path traversal.
    #[arg(long, value_name = "DIR")]
    pub root: Option<std::path::PathBuf>,
    /// Seconds the server may take to answer and close the connection.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Seconds the server may take to start listening.
    #[arg(long, default_value_t = 5.0)]
    pub listen_timeout: f64,
    /// Memory the server may use, in MB (0: no limit); an allocation past it returns NULL.
    #[arg(short = 'm', long, value_name = "MB", default_value_t = preload::DEFAULT_MEM_LIMIT_MB)]
    pub mem_limit: u64,
    /// Do not copy the server's reply to stdout.
    #[arg(long, short)]
    pub quiet: bool,
    /// Run the server under gdb instead, with the preload and the input set up the same way
    /// (the preload in the server only, through gdb's exec-wrapper). By default gdb starts the
    /// server itself (`-ex run`) and stops where it crashes (or gets SIGUSR2: a path
    /// traversal), in the child a fork-per-connection server made for the connection too; then
    /// `bt`, `frame N`, `print`... on gdb's prompt, which reads from the terminal (stdin is the
    /// input). ARGS replace `-ex run`, e.g. `--gdb='-batch -ex run -ex bt'`. No time limit; the
    /// exit status is gdb's.
    #[arg(long, value_name = "ARGS", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub gdb: Option<String>,
    /// The server and its arguments, e.g. `./server -p 8080 -R www`.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

/// The server's command line, the preload's extra environment, the limits.
type Prepared = (Vec<OsString>, Vec<(&'static str, OsString)>, Limits);

impl Args {
    /// The server's command line, the preload's extra environment (the web root) and the
    /// limits of `fuzzer run`, with or without `--gdb`.
    fn prepare(&self) -> Result<Prepared> {
        let command = self.command.iter().map(OsString::from).collect();
        let limits = Limits {
            listen: Duration::from_secs_f64(self.listen_timeout),
            run: Duration::from_secs_f64(self.timeout),
            mem_mb: self.mem_limit,
            stacks: None,
        };
        let mut envs = Vec::new();
        if let Some(root) = &self.root {
            let root = root.canonicalize().with_context(|| format!("--root {}: no such folder", root.display()))?;
            envs.push((env::name(env::ROOT), root.into_os_string()));
        }
        Ok((command, envs, limits))
    }
}

/// One run, its verdict, and an exit status that says it; with `--gdb`, gdb's session.
pub fn run(args: &Args) -> Result<ExitCode> {
    let (command, envs, limits) = args.prepare()?;
    let envs: Vec<(&str, &OsStr)> = envs.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    if let Some(gdb_args) = &args.gdb {
        return super::gdb::run(&command, &envs, limits, !args.quiet, gdb_args);
    }
    let finished = runner::run(&command, &envs, None, None, limits, !args.quiet)?;
    let code = match finished.outcome {
        Outcome::Ok => 0,
        Outcome::Crash(sig) => 128 + sig,
        Outcome::Traversal(_) => 128 + SIG_TRAVERSAL,
        Outcome::DescriptorLeak(_) => 128 + SIG_FD_LEAK,
        Outcome::MemoryLeak(_) => 128 + SIG_MEM_LEAK,
        Outcome::Hang | Outcome::LeftOpen | Outcome::Blocked => 124,
        Outcome::Exited(_) => 1,
    };
    eprintln!("[run] {}", finished.outcome);
    let advice = match finished.outcome {
        Outcome::DescriptorLeak(_) => Some(crate::explain::DESCRIPTOR_LEAK),
        Outcome::MemoryLeak(_) => Some(crate::explain::MEMORY_LEAK),
        Outcome::Crash(sig) => crate::explain::signal(sig),
        _ => None,
    };
    if let Some(advice) = advice {
        eprintln!("[run] {advice}");
    }
    Ok(ExitCode::from(code as u8))
}
