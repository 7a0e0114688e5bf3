//! Stage 3, fuzzing: LibAFL's `Launcher` runs a broker (this process, showing the status)
//! and one fuzzing instance per core and build (a LibAFL client; the screen and `clients.log`
//! keep that word), each driving its own copy of the server through the AFL++ fork server, with
//! AFL++-compatible output in `OUT/fuzzK`. ("client" in this crate's code is only ever the
//! preload's HTTP client inside the server.)

mod cmplog;
mod comux_mutators;
pub mod comux_share;
pub mod cores;
mod executor;
pub mod findings;
pub mod grammar;
mod http;
mod http_mutator;
mod http_structure;
mod instance;
mod mutators;
mod names;
mod objective;
mod scheduler;
mod screen;
mod seen;
pub mod server_dict;
mod shmem;
mod snapshot;
mod stats;
mod status;

use crate::runner::target::Target;
use anyhow::{bail, Context, Result};
use libafl::corpus::{InMemoryOnDiskCorpus, OnDiskCorpus};
use libafl::events::{
    setup_restarting_mgr_llmp, ClientDescription, EventConfig, Launcher, LlmpRestartingEventManager, ManagerKind,
    ShouldSaveState, StdLlmpEventHook,
};
use libafl::inputs::BytesInput;
use libafl::observers::{ExplicitTracking, HitcountsMapObserver, StdMapObserver};
use libafl::state::StdState;
use libafl::Error;
use libafl_bolts::core_affinity::Cores;
use libafl_bolts::llmp::{Broker, LlmpBroker};
use libafl_bolts::rands::StdRand;
use libafl_bolts::shmem::ShMemProvider;
use libafl_bolts::tuples::tuple_list;
use shmem::SelfRemovingShMemProvider as Provider;
use status::Status;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The coverage map observer (AFL hit-count buckets over the fork server's shared map), with
/// index tracking for the minimizing scheduler.
pub type Edges = ExplicitTracking<HitcountsMapObserver<StdMapObserver<'static, u8, false>>, true, false>;
/// The response-state map's observer (`contract::states`): one byte per status-code transition.
pub type States = StdMapObserver<'static, u8, false>;
pub type State = StdState<InMemoryOnDiskCorpus<BytesInput>, BytesInput, StdRand, OnDiskCorpus<BytesInput>>;
type Mgr = LlmpRestartingEventManager<(), BytesInput, State, <Provider as ShMemProvider>::ShMem, Provider>;

/// One seed: its file name (for `orig:`) and bytes.
pub type Seed = (String, Vec<u8>);

pub struct Options {
    pub target: Target,
    /// The AddressSanitizer build: each core then runs a second instance on it.
    pub asan: Option<Target>,
    pub out: PathBuf,
    /// Stop after this long (None: until Ctrl-C).
    pub duration: Option<Duration>,
    /// Per-run timeout; None: calibrated from the seeds.
    pub exec_timeout: Option<Duration>,
    /// The re-run of a new hang candidate gets this long (`executor`).
    pub hang_timeout: Duration,
    pub cores: Cores,
    /// The user's web root (copied per instance), or the built-in sample one.
    pub root: Option<PathBuf>,
    pub seeds: Vec<Seed>,
    pub dicts: Vec<PathBuf>,
    /// Schedule the HTTP-aware mutators beside havoc.
    pub http_mutators: bool,
    /// Test cases of several connections (comux mutators).
    pub several_connections: bool,
    /// Trace comparisons of new entries and copy the values the server compared against into
    /// the input (LibAFL's colorization + AFL++-style RedQueen).
    pub cmplog: bool,
    /// Keep an input for a new transition between the status codes of its responses too
    /// (`contract::states`), not only for new edges.
    pub states: bool,
    /// Test cases per server process (persistent mode above 1; `executor`).
    pub persistent: u32,
    pub resume: bool,
    pub stop_on_crash: bool,
    /// The port of our broker (instances and other machines' brokers connect to it).
    pub broker_port: u16,
    /// Another campaign's broker to join (LibAFL broker-to-broker over TCP).
    pub remote_broker: Option<SocketAddr>,
    /// AFL++ output folders whose instances' `queue/` entries we import.
    pub sync_dirs: Vec<PathBuf>,
    /// The command line, for `fuzzer_stats` and `crashes/README.txt`.
    pub command_line: String,
    /// Show the full-screen status (`screen`) instead of status lines.
    pub screen: bool,
}

/// What one instance fuzzes and where it writes: the plain build in `fuzzK`, the ASan build in
/// `fuzzK-asan` (K counts the cores).
pub struct Role<'a> {
    pub dir: PathBuf,
    pub target: &'a Target,
    pub asan: bool,
}

impl Options {
    /// Instances per core: the plain build's, and the ASan build's if there is one, which takes
    /// a fifth of the core (`instance::ASAN_SHARE`).
    fn per_core(&self) -> usize {
        1 + usize::from(self.asan.is_some())
    }

    /// The role of instance `slot` (0-based, in launch order: per core, plain then ASan).
    pub fn role(&self, slot: usize) -> Role<'_> {
        let (core, asan) = (slot / self.per_core(), slot % self.per_core() == 1);
        let target = if asan { self.asan.as_ref().unwrap_or(&self.target) } else { &self.target };
        let name = if asan { format!("fuzz{core}-asan") } else { format!("fuzz{core}") };
        Role { dir: self.out.join(name), target, asan }
    }

    /// Every instance's folder.
    pub fn instance_dirs(&self) -> Vec<PathBuf> {
        (0..self.cores.ids.len() * self.per_core()).map(|slot| self.role(slot).dir).collect()
    }

    /// Created by any instance to stop them all (`--stop-on-crash`), or by the screen's `q`
    /// (then it says `user`).
    pub fn stop_file(&self) -> PathBuf {
        self.out.join(".stop")
    }

    /// Whether the campaign was stopped by hand (the screen's `q`), not at a crash.
    pub fn stopped_by_user(&self) -> bool {
        std::fs::read(self.stop_file()).is_ok_and(|text| text == b"user")
    }

    /// The instances' stdout and stderr while the screen is shown (`OUT/clients.log`).
    pub fn messages_log(&self) -> PathBuf {
        self.out.join("clients.log")
    }
}

/// The order instances are shown in, from an instance folder's name (`Options::role`): by core, the
/// plain instance before its ASan one (`fuzz2`, `fuzz2-asan`, `fuzz10`); other names last.
pub fn instance_order(name: &str) -> (u64, &str) {
    let digits = name.strip_prefix("fuzz").unwrap_or("").split(|c: char| !c.is_ascii_digit()).next();
    (digits.and_then(|d| d.parse().ok()).unwrap_or(u64::MAX), name)
}

/// Written in an instance's folder when it has finished (not when it died: then it is restarted).
pub fn done_file(dir: &std::path::Path) -> PathBuf {
    dir.join(".done")
}

/// Where an instance leaves the error that ended it, for the parent to report.
pub fn error_file(dir: &std::path::Path) -> PathBuf {
    dir.join(".error")
}

/// LibAFL's broker, as its launcher runs it, plus the broker-to-broker link the 0.16 launcher
/// leaves out (it ignores `remote_broker_addr`).
fn run_broker(opts: &Options, provider: Provider, mut monitor: Status) -> Result<(), Error> {
    if opts.screen {
        let setup = screen::Setup {
            out: opts.out.clone(),
            log: opts.messages_log(),
            stop_file: opts.stop_file(),
            duration: opts.duration,
            title: opts.out.display().to_string(),
        };
        monitor.start_screen(screen::Screen::start(setup));
    }
    let hook = StdLlmpEventHook::<BytesInput, Status>::new(monitor)?;
    let mut broker = LlmpBroker::create_attach_to_tcp(provider, tuple_list!(hook), opts.broker_port)?;
    if let Some(remote) = opts.remote_broker {
        // Register our own instances first: the link takes the next instance id, and an instance
        // registering at that moment could get the same id and drop the link's events as its own.
        let local = opts.instance_dirs().len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while broker.num_clients_seen() - broker.nb_listeners() < local && Instant::now() < deadline {
            broker.broker_once()?;
            std::thread::sleep(Duration::from_millis(5));
        }
        broker.inner_mut().connect_b2b(remote)?;
    }
    stop_broker_when_instances_are_done(opts);
    broker.loop_with_timeouts(Duration::from_secs(30), Some(Duration::from_millis(5)));
    Ok(())
}

/// The broker's loop ends on SIGINT/SIGTERM or when all its clients are gone, but a linked
/// broker of another campaign counts as a client forever: so once our own instances have
/// finished, stop it the way Ctrl-C would.
fn stop_broker_when_instances_are_done(opts: &Options) {
    let done: Vec<PathBuf> = opts.instance_dirs().iter().map(|d| done_file(d)).collect();
    std::thread::spawn(move || {
        // Also wait for LibAFL's handler to be installed: before it, SIGTERM would kill us.
        while !done.iter().all(|f| f.exists()) || !sigterm_is_handled() {
            std::thread::sleep(Duration::from_millis(100));
        }
        // To our own process, whose handler (LibAFL's) ends the loop.
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGTERM);
    });
}

/// (Raw libc: nix's `sigaction` always sets a new action; this only reads the current one.)
fn sigterm_is_handled() -> bool {
    // SAFETY: reads the current disposition into a zeroed sigaction; nothing is changed.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGTERM, std::ptr::null(), &mut current) == 0 && current.sa_sigaction != libc::SIG_DFL
    }
}

/// Fuzz until the time limit, `--stop-on-crash` or Ctrl-C. Returns in the launching process
/// only; instance processes exit inside.
pub fn run(opts: &Options) -> Result<()> {
    let _ = std::fs::remove_file(opts.stop_file());
    for dir in opts.instance_dirs() {
        let _ = std::fs::remove_file(done_file(&dir));
        let _ = std::fs::remove_file(error_file(&dir));
    }
    let shmem_provider = Provider::new().context("cannot create shared memory for the clients")?;
    let parent = std::process::id();
    // Fixed before forking, so a restarted instance keeps the original end time.
    let deadline = opts.duration.map(|d| Instant::now() + d);
    let mut run_instance =
        |state: Option<State>, mgr: Mgr, desc: ClientDescription| instance::run(opts, deadline, state, mgr, &desc);
    // Never trust another instance's coverage map: the ASan build (or another machine's build)
    // numbers its edges differently, so every instance re-runs the entries it receives.
    let config = EventConfig::AlwaysUnique;
    let spawn_mgr =
        |_: &Launcher<'_, _, Status, Provider>, instance: Option<ClientDescription>, monitor: Option<Status>| {
            let provider = Provider::new()?;
            match instance {
                Some(client_description) => {
                    setup_restarting_mgr_llmp::<(), BytesInput, Status, State, Provider>(
                        provider,
                        config,
                        None,
                        opts.broker_port,
                        ManagerKind::Client { client_description },
                        None,
                        // An instance that dies (panic, OOM kill) is restarted and reloads its queue from disk.
                        ShouldSaveState::OOMSafeNever,
                        tuple_list!(),
                    )
                }
                None => {
                    let monitor = monitor.ok_or_else(|| Error::illegal_state("broker without a monitor"))?;
                    run_broker(opts, provider, monitor)?;
                    Err(Error::shutting_down())
                }
            }
        };
    // On the screen, the instances' messages would tear it: they go to a file it shows.
    let messages_log = opts.screen.then(|| opts.messages_log().to_string_lossy().into_owned());
    let launched = Launcher::builder()
        .shmem_provider(shmem_provider)
        .configuration(config)
        .monitor(Status::new())
        .stdout_file(messages_log.as_deref())
        .run_client(&mut run_instance)
        .cores(&opts.cores)
        .overcommit(opts.per_core())
        .broker_port(opts.broker_port)
        .build()
        .launch_with_manager(spawn_mgr);
    if std::process::id() != parent {
        // An instance or its restarter: the launching process reports.
        std::process::exit(0);
    }
    match launched {
        Ok(()) | Err(Error::ShuttingDown) => {}
        Err(e) => bail!("the fuzzer stopped with an error: {e}"),
    }
    let errors: Vec<String> = opts
        .instance_dirs()
        .iter()
        .filter_map(|dir| {
            let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            std::fs::read_to_string(error_file(dir)).ok().map(|e| format!("{name}: {e}"))
        })
        .collect();
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}
