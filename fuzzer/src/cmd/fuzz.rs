//! The default command, `fuzzer --src-dir DIR`: the campaign, stage by stage. Build (or take
//! `--server`), check that every build can be driven, fuzz on the cores, then report: triage,
//! summary and plots. Each stage's result is handed to the next; none calls back up.
use std::io::IsTerminal;
use std::net::{TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::build;
use crate::fuzz::{self, cores, grammar, server_dict};
use crate::runner::{preload, target};
use crate::{assets, check, comux, port, report};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub build: build::BuildArgs,
    /// Fuzz this already instrumented server (built by fuzzer-cc or AFL++'s afl-clang-fast)
    /// instead of building --src-dir.
    #[arg(long, value_name = "PATH", conflicts_with = "src_dir")]
    server: Option<PathBuf>,
    /// How long to fuzz, in seconds.
    #[arg(short = 'd', long, value_name = "SECS", default_value_t = 9600)]
    fuzz_duration: u64,
    /// Cores to fuzz on, one client each: `0-7`, `1,3,5` or `all` (of those this process may
    /// use: its CPU affinity) [default: one of those that no other fuzzer is pinned to]
    #[arg(long, value_name = "LIST", conflicts_with = "fuzz_cores")]
    cores: Option<String>,
    /// Fuzz on N cores this process may use, those no other fuzzer is pinned to first.
    #[arg(short = 'j', long, value_name = "N")]
    fuzz_cores: Option<usize>,
    /// Per-run timeout in ms (default: calibrated from the seeds that neither hang nor crash, at
    /// least 50 ms).
    #[arg(short = 't', long, value_name = "MS")]
    timeout: Option<u64>,
    /// Memory each copy of the server may use, in MB (0: no limit): an allocation past it returns
    /// NULL, as on a full machine, instead of taking this machine's memory.
    #[arg(short = 'm', long, value_name = "MB", default_value_t = preload::DEFAULT_MEM_LIMIT_MB)]
    mem_limit: u64,
    /// A new hang candidate (a run that timed out, or left the connection open) is re-run with
    /// this timeout, in ms, and saved only if it hangs again.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    hang_timeout: u64,
    /// Continue the run in the existing output folder (its queue is reloaded).
    #[arg(long)]
    resume: bool,
    /// Stop at the first crash.
    #[arg(long)]
    stop_on_crash: bool,
    /// Do not triage the crash and hang files at the end (`fuzzer triage OUT` does it later).
    #[arg(long)]
    no_triage: bool,
    /// Web root for the server (copied for each client; default: a small built-in site).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// The server's arguments; {port} and {root} are filled in. The path-traversal oracle
    /// flags files the server reaches outside {root} (through `..`, `%2e%2e` or a symlink); a
    /// server given no {root} (one that serves a fixed folder) is not checked for traversals.
    #[arg(long, value_name = "ARGS", default_value = target::DEFAULT_ARGS, allow_hyphen_values = true)]
    server_args: String,
    /// Seed folder of raw requests (default: the built-in HTTP seeds).
    #[arg(long, value_name = "DIR")]
    seeds: Option<PathBuf>,
    /// Extra dictionary in AFL `-x` format (repeatable).
    #[arg(short = 'x', long = "dict", value_name = "FILE")]
    dicts: Vec<PathBuf>,
    /// Do not use the built-in HTTP dictionary, nor the server's own strings (OUT/server.dict).
    #[arg(long)]
    no_dict: bool,
    /// HTTP request grammar (Nautilus JSON) for extra seeds (default: the built-in pserv API grammar).
    #[arg(long, value_name = "FILE")]
    grammar: Option<PathBuf>,
    /// How many seeds to generate from the grammar.
    #[arg(long, value_name = "N", default_value_t = 50)]
    grammar_seeds: usize,
    /// No grammar-generated seeds.
    #[arg(long, conflicts_with = "grammar")]
    no_grammar: bool,
    /// Only LibAFL's havoc and dictionary mutators, without the HTTP-aware ones.
    #[arg(long)]
    no_http_mutators: bool,
    /// Every test case is one connection: no seeds or mutations of several connections (comux
    /// files), as with AFL++ and a desocketing preload.
    #[arg(long)]
    single_connection: bool,
    /// Test cases per forked server, each on a new connection (default 100; crashes and hangs
    /// are kept only if a fresh server repeats them, and a server that keeps state between
    /// connections falls back to one test case per server on its own).
    #[arg(long, value_name = "N", conflicts_with = "no_persistent")]
    persistent: Option<u32>,
    /// One test case per forked server (the default for builds not made by fuzzer-cc).
    #[arg(long)]
    no_persistent: bool,
    /// No CmpLog / input-to-state stage (a second, tracing copy of the server per client).
    #[arg(long)]
    no_cmplog: bool,
    /// Keep inputs for the new edges they reach only, not also for a new sequence of response
    /// status codes (a 200 after a 302, say).
    #[arg(long)]
    no_state: bool,
    /// Cap on cores x duration in CPU-seconds (for shared machines): the duration is cut to fit.
    #[arg(long, value_name = "SECS")]
    cpu_budget: Option<u64>,
    /// Port of LibAFL's broker (default: a free one). Other campaigns join with --remote-broker.
    #[arg(long, value_name = "PORT")]
    broker_port: Option<u16>,
    /// Join another campaign's broker (HOST:PORT, e.g. on another machine) and share its corpus.
    #[arg(long, value_name = "HOST:PORT")]
    remote_broker: Option<String>,
    /// Import new inputs from AFL++ instances writing into DIR (their `queue/` folders).
    #[arg(long, value_name = "DIR")]
    sync_dir: Vec<PathBuf>,
    /// Plain status lines instead of the full-screen status (the default when stdout is not a
    /// terminal).
    #[arg(long)]
    no_tui: bool,
    /// Only print the summary of an existing output folder.
    #[arg(short = 'r', long, value_name = "OUT")]
    pub summary: Option<PathBuf>,
}

/// The campaign, or with `-r OUT` only its summary.
pub fn run(args: &Args) -> Result<ExitCode> {
    match &args.summary {
        Some(out) => report::summary::print(out)?,
        None => campaign(args)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The main job: build, check, fuzz, report.
fn campaign(args: &Args) -> Result<()> {
    let out = &args.build.out_dir;
    let cores = cores::choose(args.cores.as_deref(), args.fuzz_cores)?;
    let existing = out.join("fuzz0").exists();
    if existing && !args.resume {
        bail!(
            "the output folder {} holds an earlier run: continue it with --resume, or choose a new folder with -o",
            out.display()
        );
    }
    if args.resume && !existing {
        bail!("--resume: {} holds no earlier run to continue", out.display());
    }
    let mut seeds = match &args.seeds {
        Some(dir) => assets::seeds_from(dir)?,
        None => assets::seeds(),
    };
    if !args.no_grammar {
        seeds.extend(grammar::seeds(args.grammar.as_deref(), args.grammar_seeds)?);
    }
    if args.single_connection {
        seeds.retain(|(_, seed)| !contract::comux::is_comux(seed));
    }
    for dict in &args.dicts {
        if !dict.is_file() {
            bail!("the dictionary {} does not exist", dict.display());
        }
    }
    let mut duration = args.fuzz_duration;
    if let Some(budget) = args.cpu_budget {
        let n = cores.ids.len() as u64;
        if n * duration > budget {
            duration = budget / n;
            println!(
                "[limits] {n} core(s) x {} s exceeds the CPU budget of {budget} s: fuzzing for {duration} s",
                args.fuzz_duration
            );
        }
    }
    let remote_broker = match &args.remote_broker {
        Some(addr) => Some(
            addr.to_socket_addrs()
                .with_context(|| format!("--remote-broker {addr}: not a HOST:PORT address"))?
                .next()
                .with_context(|| format!("--remote-broker {addr}: the host name does not resolve"))?,
        ),
        None => None,
    };
    let broker_port = match args.broker_port {
        Some(port) => {
            TcpListener::bind(("0.0.0.0", port))
                .with_context(|| format!("--broker-port {port} is busy (another campaign?): choose another port, or leave it out to get a free one"))?;
            port
        }
        None => port::free_port()?,
    };
    for dir in &args.sync_dir {
        if !dir.is_dir() {
            bail!("--sync-dir {} does not exist", dir.display());
        }
    }
    if let Some(root) = args.root.as_ref().filter(|r| !r.is_dir()) {
        bail!("--root {} is not a folder: give the web root your server should serve", root.display());
    }
    let (built, ending) = match &args.server {
        Some(server) => {
            std::fs::create_dir_all(out)
                .with_context(|| format!("cannot create the output folder {}", out.display()))?;
            let plain = std::path::absolute(server)?;
            let built =
                build::Built { plain, asan: None, plain_cwd: None, asan_cwd: None }.in_working_copy(&args.build)?;
            let ending = check::check_builds(&built, out, &args.server_args, args.mem_limit)?;
            (build::Built { plain: server.canonicalize()?, ..built }, ending)
        }
        None => super::build::build_and_check(&args.build, &args.server_args, args.mem_limit)?,
    };
    if !args.no_cmplog && !build::has_our_runtime(&built.plain)? {
        println!("[cmplog] {} has AFL++'s runtime, whose CmpLog map layout depends on the AFL++ version: only the string comparisons the preload sees are traced (build with fuzzer-cc, or use --src-dir, for integer comparisons too)", built.plain.display());
    }
    if ending == check::Ending::KeepOpen {
        // Seeds of one connection keep it open; comux seeds say for themselves.
        for (_, seed) in seeds.iter_mut().filter(|(_, s)| !contract::comux::is_comux(s)) {
            *seed = comux::kept_open(seed);
        }
    }
    let persistent = persistent_runs(args, &built)?;
    let mut dicts = args.dicts.clone();
    if !args.no_dict {
        let builtin = out.join("http.dict");
        std::fs::write(&builtin, assets::DICTIONARY).with_context(|| format!("cannot write {}", builtin.display()))?;
        dicts.insert(0, builtin);
        let strings = out.join("server.dict");
        match server_dict::write(&built.plain, &strings) {
            Ok(n) => {
                println!("[dict] {n} strings of the server's binary added to the dictionary ({})", strings.display());
                dicts.insert(1, strings);
            }
            Err(e) => println!("[dict] the server's own strings are left out: {e:#}"),
        }
    }
    let opts = fuzz::Options {
        target: target::Target::new(built.plain, Some(&args.server_args))
            .in_dir(built.plain_cwd)
            .with_mem_limit(args.mem_limit),
        asan: built.asan.map(|asan| {
            target::Target::new(asan, Some(&args.server_args)).in_dir(built.asan_cwd).with_mem_limit(args.mem_limit)
        }),
        out: out.clone(),
        duration: Some(Duration::from_secs(duration)),
        exec_timeout: args.timeout.map(Duration::from_millis),
        hang_timeout: Duration::from_millis(args.hang_timeout),
        cores,
        root: args.root.clone(),
        seeds,
        dicts,
        http_mutators: !args.no_http_mutators,
        several_connections: !args.single_connection,
        cmplog: !args.no_cmplog,
        states: !args.no_state,
        persistent,
        resume: args.resume,
        stop_on_crash: args.stop_on_crash,
        broker_port,
        remote_broker,
        sync_dirs: args.sync_dir.clone(),
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        screen: !args.no_tui && std::io::stdout().is_terminal() && std::io::stdin().is_terminal(),
    };
    let asan = if opts.asan.is_some() { ", each with a plain and an AddressSanitizer client" } else { "" };
    println!(
        "[fuzz] fuzzing on {} core(s){asan} for {duration} s (broker on port {broker_port}); press Ctrl-C to stop early",
        opts.cores.ids.len()
    );
    let targets = report::triage::Targets {
        plain: opts.target.clone(),
        asan: opts.asan.clone(),
        root: args.root.clone(),
        host_network: preload::on_host_network(),
    };
    targets.save(out)?;
    let started = std::time::Instant::now();
    let result = fuzz::run(&opts);
    println!();
    // Stopped by hand (Ctrl-C, the screen's `q`): ended before its time, not at a crash.
    let interrupted = started.elapsed() + Duration::from_secs(2) < Duration::from_secs(duration)
        && (!opts.stop_file().exists() || opts.stopped_by_user());
    report::after_campaign(out, !args.no_triage, interrupted, started.elapsed())?;
    result
}

/// Test cases per server process unless asked otherwise: a fresh server for 1% of them bounds
/// what a leaking server piles up (descriptors, memory); 1000 was no faster in a trial.
const PERSISTENT_RUNS: u32 = 100;

/// Test cases per server process: [`PERSISTENT_RUNS`] or as asked, where every build's runtime
/// serves them; else 1.
fn persistent_runs(args: &Args, built: &build::Built) -> Result<u32> {
    if args.no_persistent {
        return Ok(1);
    }
    for binary in std::iter::once(&built.plain).chain(&built.asan) {
        if !build::runs_persistently(binary)? {
            if args.persistent.is_some() {
                println!(
                    "[persistent] {} was not built by this version's fuzzer-cc, whose fork server hands a server its next test case: one test case per process",
                    binary.display()
                );
            }
            return Ok(1);
        }
    }
    Ok(args.persistent.unwrap_or(PERSISTENT_RUNS).max(1))
}
