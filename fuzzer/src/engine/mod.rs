//! The fuzzing engine: LibAFL's `Launcher` runs a broker (this process, showing the status)
//! and one client per core, each driving its own copy of the server through the AFL++ fork
//! server, with AFL++-compatible output in `OUT/fuzzK`.

mod client;
mod executor;
pub mod findings;
mod mutators;
mod names;
mod stats;
mod status;

use crate::target::Target;
use anyhow::{bail, Context, Result};
use libafl::events::{ClientDescription, EventConfig, Launcher, LlmpRestartingEventManager, ShouldSaveState};
use libafl::inputs::BytesInput;
use libafl::Error;
use libafl::corpus::{InMemoryOnDiskCorpus, OnDiskCorpus};
use libafl::observers::{ExplicitTracking, HitcountsMapObserver, StdMapObserver};
use libafl::state::StdState;
use libafl_bolts::core_affinity::Cores;
use libafl_bolts::rands::StdRand;
use libafl_bolts::shmem::{ShMemProvider, StdShMemProvider};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The coverage map observer (AFL hit-count buckets over the fork server's shared map), with
/// index tracking for the minimizing scheduler.
pub type Edges = ExplicitTracking<HitcountsMapObserver<StdMapObserver<'static, u8, false>>, true, false>;
pub type State = StdState<InMemoryOnDiskCorpus<BytesInput>, BytesInput, StdRand, OnDiskCorpus<BytesInput>>;
type Mgr = LlmpRestartingEventManager<(), BytesInput, State, <StdShMemProvider as ShMemProvider>::ShMem, StdShMemProvider>;

/// One seed: its file name (for `orig:`) and bytes.
pub type Seed = (String, Vec<u8>);

pub struct Options {
    pub target: Target,
    pub out: PathBuf,
    /// Stop after this long (None: until Ctrl-C).
    pub duration: Option<Duration>,
    /// Per-run timeout; None: calibrated from the seeds.
    pub exec_timeout: Option<Duration>,
    /// A run must take longer than this (twice) to be saved as a hang.
    pub hang_timeout: Duration,
    pub cores: Cores,
    /// The user's web root (copied per client), or the built-in sample one.
    pub root: Option<PathBuf>,
    pub seeds: Vec<Seed>,
    pub dicts: Vec<PathBuf>,
    pub resume: bool,
    pub stop_on_crash: bool,
    /// The port of our broker (clients and other machines' brokers connect to it).
    pub broker_port: u16,
    /// AFL++ output folders whose instances' `queue/` entries we import.
    pub sync_dirs: Vec<PathBuf>,
    /// The command line, for `fuzzer_stats` and `crashes/README.txt`.
    pub command_line: String,
}

impl Options {
    pub fn client_dir(&self, index: usize) -> PathBuf {
        self.out.join(format!("fuzz{index}"))
    }

    /// Created by any client to stop them all (`--stop-on-crash`).
    fn stop_file(&self) -> PathBuf {
        self.out.join(".stop")
    }

    /// Where a client leaves the error that ended it, for the parent to report.
    pub fn error_file(&self, index: usize) -> PathBuf {
        self.client_dir(index).join(".error")
    }
}

/// Fuzz until the time limit, `--stop-on-crash` or Ctrl-C. Returns in the launching process
/// only; client processes exit inside.
pub fn fuzz(opts: &Options) -> Result<()> {
    let _ = std::fs::remove_file(opts.stop_file());
    let shmem_provider = StdShMemProvider::new().context("cannot create shared memory for the clients")?;
    let parent = std::process::id();
    // Fixed before forking, so a restarted client keeps the original end time.
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let mut run_client = |state: Option<State>, mgr: Mgr, desc: ClientDescription| client::run(opts, deadline, state, mgr, &desc);
    let launched = Launcher::builder()
        .shmem_provider(shmem_provider)
        .configuration(EventConfig::from_name("pserv-fuzz"))
        .monitor(status::StatusLine::new(Duration::from_secs(1)))
        .run_client(&mut run_client)
        .cores(&opts.cores)
        .broker_port(opts.broker_port)
        // A client that dies (panic, OOM kill) is restarted and reloads its queue from disk.
        .serialize_state(ShouldSaveState::OOMSafeNever)
        .build()
        .launch();
    if std::process::id() != parent {
        // A client or its restarter: the launching process reports.
        std::process::exit(0);
    }
    match launched {
        Ok(()) | Err(Error::ShuttingDown) => {}
        Err(e) => bail!("the fuzzer stopped with an error: {e}"),
    }
    let errors: Vec<String> = (0..opts.cores.ids.len())
        .filter_map(|i| std::fs::read_to_string(opts.error_file(i)).ok().map(|e| format!("fuzz{i}: {e}")))
        .collect();
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}
