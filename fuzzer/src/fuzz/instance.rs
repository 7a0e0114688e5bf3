//! One fuzzing instance: its server, its corpus and its `OUT/fuzzK` folder.

use super::cmplog;
use super::comux_mutators::{comux_mutations, DictSwap, OnChunk};
use super::comux_share::{self, Measured};
use super::executor::{finding_file, sockfuzz_error_file, ServerExecutor};
use super::findings::{read_leaks, CurrentOp, Findings, LastRun, Loading, Wait};
use super::mutators::http_mutations;
use super::names::{OpsNamed, QueueNames, Ran};
use super::objective::{count_files, Solutions};
use super::scheduler::{NewFavoredFirst, Weighted};
use super::shmem::SelfRemovingShMemProvider;
use super::stats::{AflStats, RunInfo};
use super::{done_file, error_file, Edges, Mgr, Options, Role, State, States};
use crate::runner::preload;
use crate::{assets, port};
use contract::env;
use contract::MAP_SIZE;
use libafl::corpus::{Corpus, InMemoryOnDiskCorpus, OnDiskCorpus};
use libafl::events::{ClientDescription, Event, EventFirer, EventWithStats, ProgressReporter, SendExiting};
use libafl::executors::forkserver::{ForkserverExecutor, ForkserverExecutorBuilder};
use libafl::executors::StdChildArgs;
use libafl::executors::{ExitKind, HasObservers};
use libafl::feedbacks::ExitKindFeedback;
use libafl::feedbacks::{MaxMapFeedback, TimeFeedback};
use libafl::fuzzer::{Evaluator, ExecutesInput, ExecutionProcessor, Fuzzer, StdFuzzer};
use libafl::inputs::BytesInput;
use libafl::monitors::stats::{AggregatorOps, UserStats, UserStatsValue};
use libafl::mutators::{havoc_mutations, tokens_mutations, AflppRedQueen, HavocScheduledMutator, Tokens};
use libafl::observers::{CanTrack, HitcountsMapObserver, StdMapObserver, TimeObserver};
use libafl::schedulers::powersched::PowerSchedule;
use libafl::schedulers::{HasQueueCycles, IndexesLenTimeMinimizerScheduler};
use libafl::stages::mutational::MultiMutationalStage;
use libafl::stages::{
    CalibrationStage, ColorizationStage, IfStage, OptionalStage, StdMutationalStage, StdPowerMutationalStage,
    SyncFromDiskStage, WhileStage,
};
use libafl::state::{HasCorpus, HasExecutions, HasMaxSize, HasStartTime, StdState};
use libafl::{feedback_and_fast, feedback_or};
use libafl::{Error, HasMetadata, HasScheduler};
use libafl_bolts::fs::InputFile;
use libafl_bolts::rands::StdRand;
use libafl_bolts::shmem::{ShMem, ShMemProvider};
use libafl_bolts::tuples::{tuple_list, Handled, Merge};
use libafl_bolts::{current_nanos, InputLocation, StdTargetArgs};
use nix::sys::signal::Signal;
use std::borrow::Cow;
use std::ffi::OsString;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The share of its core's time the ASan instance may spend in runs (it shares the core with the
/// plain instance; `ServerExecutor::pace`). At 0.2 the plain instance keeps about 82% of its solo
/// executions (0.1: 93%; nice 10 or SCHED_IDLE instead: 44%) and `scripts/bench-bugs --configs
/// plain,default` finds every ASan-only bug in every run (README).
const ASAN_SHARE: f64 = 0.2;

/// The HTTP stage: at most this many runs per scheduled entry, each of 2^1..2^HTTP_STACK_POW
/// stacked HTTP edits (havoc stacks up to 128 mutations of every kind). 32 for the first eleven
/// HTTP mutators; 48 since the five structure ones joined them, so that each of the eleven
/// keeps its runs per entry (an empty `Content-Length`, a percent-encoded climb came later).
const HTTP_ITERATIONS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(48).unwrap();
const HTTP_STACK_POW: usize = 2;

/// The multi-connection stage (when due, `comux_share`): at most this many runs per entry, of
/// two stacked edits each (a connection added and a flag set on it, say). Enough that its gate,
/// not this count, sets its share: on tests/pserv in 60 s it had 8% of the time with 256 (its
/// gate allows 10%), 0.8% with 16 (havoc's power schedule runs hundreds per entry).
const COMUX_ITERATIONS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(256).unwrap();
const COMUX_STACK_POW: usize = 1;

/// The longest test case, for the executor (which would cut a longer one, a comux file's last
/// chunk with it) and for the mutators (`state.max_size()`). LibAFL's default, said once.
const MAX_INPUT: usize = 1 << 20;

/// How long the server may take to start its fork server (reach `listen`).
const STARTUP_LIMIT: Duration = Duration::from_secs(20);

pub fn run(
    opts: &Options,
    deadline: Option<Instant>,
    state: Option<State>,
    mut mgr: Mgr,
    desc: &ClientDescription,
) -> Result<(), Error> {
    let role = opts.role(desc.id().saturating_sub(1));
    let result = fuzz(opts, &role, deadline, state, &mut mgr, desc);
    if let Err(e) = &result {
        if !matches!(e, Error::ShuttingDown) {
            let _ = std::fs::write(error_file(&role.dir), e.to_string());
        }
    }
    // Tell the restarter and the broker that this instance is done, not crashed.
    mgr.send_exiting()?;
    let _ = std::fs::write(done_file(&role.dir), b"");
    Ok(())
}

fn fuzz(
    opts: &Options,
    role: &Role,
    deadline: Option<Instant>,
    state: Option<State>,
    mgr: &mut Mgr,
    desc: &ClientDescription,
) -> Result<(), Error> {
    // An instance restarted after dying once the campaign is over has nothing left to do.
    if deadline.is_some_and(|d| Instant::now() >= d) || opts.stop_file().exists() {
        return Ok(());
    }
    let dir = role.dir.clone();
    // A queue already on disk: --resume, or this instance restarted after dying.
    let reload = opts.resume || std::fs::read_dir(dir.join("queue")).is_ok_and(|mut d| d.next().is_some());
    for sub in ["queue", "crashes", "hangs"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let root = dir.join("root");
    match &opts.root {
        Some(user_root) => crate::tree::copy_tree(user_root, &root, &[]).map_err(|e| {
            Error::illegal_state(format!("cannot copy the web root {} to {}: {e}", user_root.display(), root.display()))
        })?,
        None => assets::write_root(&root).map_err(|e| Error::illegal_state(format!("{e:#}")))?,
    }
    // Absolute, as the traversal oracle compares the paths the server opens against it.
    let root = root.canonicalize()?;
    // The coverage map, shared with the fork server through __AFL_SHM_ID.
    let mut shmem_provider = SelfRemovingShMemProvider::new()?;
    let mut shmem = shmem_provider.new_shmem(MAP_SIZE)?;
    // SAFETY: this instance process is single-threaded here; the variable is read by the target.
    unsafe { shmem.write_to_env(env::name(env::AFL_SHM_ID))? };
    // SAFETY: the map lives (in `shmem`) for the whole of this function, longer than the observer.
    let map: &'static mut [u8] = unsafe { std::slice::from_raw_parts_mut(shmem.as_mut_ptr(), shmem.len()) };
    // SAFETY: only the target writes the map, and only while the executor waits for it.
    let edges = unsafe { HitcountsMapObserver::new(StdMapObserver::new("edges", map)) }.track_indices();
    let edges_handle = edges.handle();
    let time = TimeObserver::new("time");
    // The response-state map, given to the server only when asked for (else it stays empty).
    let mut states_map = shmem_provider.new_shmem(contract::states::LEN)?;
    if opts.states {
        // SAFETY: as for the coverage map above.
        unsafe { states_map.write_to_env(env::name(env::STATES_SHM))? };
    }
    // SAFETY: the map lives (in `states_map`) for the whole of this function, longer than the
    // observer; only the target writes it, and only while the executor waits for it.
    let states: States =
        unsafe { StdMapObserver::from_mut_ptr("states", states_map.as_mut_ptr(), contract::states::LEN) };
    let states_handle = states.handle();

    let map_feedback = MaxMapFeedback::new(&edges);
    let calibration = CalibrationStage::new(&map_feedback);
    // As in AFL++, only runs that ended by themselves enter the queue (not hangs, not crashes).
    // A new transition between response codes is kept too: at most one entry per transition.
    let mut feedback = feedback_and_fast!(
        ExitKindFeedback::<Ran>::new(),
        feedback_or!(
            map_feedback,
            MaxMapFeedback::new(&states),
            TimeFeedback::new(&time),
            QueueNames::new(edges_handle.clone(), states_handle)
        )
    );
    let replay = role.target.command(8080, Path::new("ROOT"));
    let mut objective = Solutions::new(edges_handle.clone(), &dir, opts.command_line.clone(), replay);
    // LibAFL hands back a state only on a restart that saved one (we never ask it to).
    let restored = state.is_some();
    let mut state = match state {
        Some(state) => state,
        None => StdState::new(
            StdRand::with_seed(current_nanos()),
            InMemoryOnDiskCorpus::with_meta_format_and_prefix(dir.join("queue"), None, None, false)?,
            OnDiskCorpus::with_meta_format_and_prefix(&dir, None, None, false)?,
            &mut feedback,
            &mut objective,
        )?,
    };
    state.set_max_size(MAX_INPUT);
    if !state.has_metadata::<Findings>() {
        let mut leaks = [0; 2];
        for (kind, _) in read_leaks(&dir).into_values() {
            leaks[kind.index()] += 1;
        }
        state.add_metadata(Findings {
            crashes: count_files(&dir.join("crashes")),
            hangs: count_files(&dir.join("hangs")),
            leaks,
            ..Findings::default()
        });
    }
    // Named from the start: the display shows an instance's row before its seeds are loaded.
    let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
    report(&mut state, mgr, "client", UserStatsValue::String(name.into()))?;
    let scheduler = NewFavoredFirst::new(IndexesLenTimeMinimizerScheduler::new(
        &edges,
        Weighted::with_schedule(&mut state, &edges, Some(PowerSchedule::fast())),
    ));
    let mut fuzzer = StdFuzzer::new(scheduler, feedback, objective);

    let library = preload::library().map_err(|e| Error::illegal_state(format!("{e:#}")))?;
    // The preload's control page: the executor marks the patient re-runs of hang candidates.
    let control = shmem_provider.new_shmem(contract::control::LEN)?;
    let control_id: i32 = control.id().into();
    let (builder, command) = server(opts, role, &root, &library, &dir.join(".cur_input"))?;
    let mut builder = builder.env(env::name(env::CONTROL_SHM), control_id.to_string());
    if opts.persistent > 1 {
        builder = builder.is_persistent(true).env(env::name(env::PERSISTENT), opts.persistent.to_string());
    }
    std::fs::write(dir.join("cmdline"), command.iter().map(|a| a.to_string_lossy() + "\n").collect::<String>())?;
    let colorization = ColorizationStage::new(&edges);
    let started = Arc::new(AtomicBool::new(false));
    watchdog(started.clone());
    let forkserver = builder.build_dynamic_map(edges, tuple_list!(time, states)).map_err(not_started)?;
    // The CmpLog tracer: another copy of the server (see `cmplog`), and its map, kept mapped.
    // The ASan instances leave CmpLog to the plain ones: their finds reach them through the broker.
    let (tracing, _cmplog_map) = if opts.cmplog && !role.asan {
        let (tracer, _) = server(opts, role, &root, &library, &dir.join(".cur_input_cmplog"))?;
        let ours =
            crate::build::has_our_runtime(&role.target.binary).map_err(|e| Error::illegal_state(format!("{e:#}")))?;
        let (stage, map) = cmplog::tracing_stage(tracer, ours).map_err(not_started)?;
        (Some(stage), Some(map))
    } else {
        (None, None)
    };
    started.store(true, Ordering::SeqCst);
    let mut executor = ServerExecutor::new(forkserver, edges_handle, opts.hang_timeout, &dir, control, deadline);
    if role.asan {
        executor.pace(ASAN_SHARE);
    }
    let total_edges = executor.inner().coverage_map_size().unwrap_or(MAP_SIZE);

    let mut tokens = Tokens::new();
    tokens = tokens.add_from_files(&opts.dicts)?;
    state.add_metadata(tokens);

    let info = RunInfo {
        banner: role.target.binary.display().to_string(),
        command_line: opts.command_line.clone(),
        core: desc.core_id().0,
        total_edges,
    };
    let mut stats = AflStats::new(&dir, info)?;
    if !restored {
        let loaded = load_seeds(opts, reload, &dir, &mut state, &mut fuzzer, &mut executor, mgr);
        // A slow server can take the whole campaign over its seeds: its figures are still due.
        if matches!(loaded, Err(Error::ShuttingDown)) {
            if desc.id() <= 1 {
                println!("[seeds] the campaign ended before every seed was tried, so nothing was mutated: give it longer (-d)");
            }
            return stats.update(&state, 0, executor.exec_timeout(), true).map(drop).map_err(Error::from);
        }
        let left_out = loaded?;
        if state.corpus().count() == 0 {
            return Err(Error::illegal_state(format!(
                "every seed crashes or hangs the server, so there is nothing to fuzz from ({}): see crashes/ and hangs/",
                left_out.join(", ")
            )));
        }
        // One line, from the first instance (all load the same seeds).
        if !left_out.is_empty() && desc.id() <= 1 {
            println!(
                "[seeds] left out {} seed(s) that crash or hang the server: {}",
                left_out.len(),
                left_out.join(", ")
            );
        }
        let slowest = state
            .corpus()
            .ids()
            .filter_map(|id| state.corpus().get(id).ok().and_then(|t| *t.borrow().exec_time()))
            .max()
            .unwrap_or(Duration::from_millis(10));
        let calibrated = (slowest * 5).max(Duration::from_millis(50)).min(opts.hang_timeout);
        executor.set_exec_timeout(opts.exec_timeout.unwrap_or(calibrated));
        executor.set_spin_bound(spin_bound(slowest, executor.exec_timeout()));
        *state.start_time_mut() = libafl_bolts::current_time();
    }

    let mut reported = (u64::MAX, u64::MAX, [u64::MAX; 2]);
    let mut reported_cycles = u64::MAX;

    // The same stages with or without the HTTP mutators (two mutator types, hence a macro).
    macro_rules! fuzz_with {
        ($mutations:expr) => {{
            let mut stages = tuple_list!(
                calibration,
                OptionalStage::new(tracing.map(|tracing| {
                    let redqueen = MultiMutationalStage::new(AflppRedQueen::with_cmplog_options(true, true));
                    tuple_list!(IfStage::new(
                        cmplog::worth_tracing,
                        tuple_list!(
                            colorization,
                            tracing,
                            SetOp("its"),
                            redqueen,
                            MultiMutationalStage::new(cmplog::TextI2S)
                        )
                    ))
                })),
                // A few HTTP edits at a time (2 or 4), not shredded by havoc's dozens: a long
                // header after the ones a server keeps pointers to must still parse as one.
                // On a comux entry, the HTTP and havoc edits of a round go to one chunk's data.
                OptionalStage::new(opts.http_mutators.then(|| {
                    let http = HavocScheduledMutator::with_max_stack_pow(http_mutations(), HTTP_STACK_POW);
                    let http = OpsNamed(OnChunk::new(http));
                    tuple_list!(SetOp("http"), StdMutationalStage::with_max_iterations(http, HTTP_ITERATIONS))
                })),
                // The multi-connection mutators, when it is their turn: a tenth of the time
                // unless they find more than the rest (`comux_share`). Not on the ASan client,
                // whose fifth of a core goes further on the plain client's finds (as CmpLog's).
                OptionalStage::new((opts.several_connections && !role.asan).then(|| {
                    tuple_list!(WhileStage::new(
                        comux_share::gate(),
                        tuple_list!(
                            SetOp("comux"),
                            Measured(StdMutationalStage::with_max_iterations(
                                OpsNamed(HavocScheduledMutator::with_max_stack_pow(comux_mutations(), COMUX_STACK_POW)),
                                COMUX_ITERATIONS
                            ))
                        )
                    ))
                })),
                SetOp("havoc"),
                StdPowerMutationalStage::new(OpsNamed(OnChunk::new(HavocScheduledMutator::new($mutations)))),
                SetOp("sync"),
                SyncFromDiskStage::with_from_file(afl_queues(&opts.sync_dirs), Duration::from_secs(30))
            );
            loop {
                let stopped = match fuzzer.fuzz_one(&mut stages, &mut executor, &mut state, mgr) {
                    Err(Error::ShuttingDown) => true, // the deadline passed within the stages
                    done => done.map(|_| false)?,
                };
                mgr.maybe_report_progress(&mut state, Duration::from_secs(1))?;
                let findings = state.metadata::<Findings>()?.clone();
                if (findings.crashes, findings.hangs, findings.leaks) != reported {
                    reported = (findings.crashes, findings.hangs, findings.leaks);
                    report(&mut state, mgr, "crashes", UserStatsValue::Number(findings.crashes))?;
                    report(&mut state, mgr, "hangs", UserStatsValue::Number(findings.hangs))?;
                    let [descriptor, memory] = findings.leaks;
                    report(&mut state, mgr, "descriptor leaks", UserStatsValue::Number(descriptor))?;
                    report(&mut state, mgr, "memory leaks", UserStatsValue::Number(memory))?;
                    if opts.stop_on_crash && findings.crashes > 0 {
                        let _ = std::fs::write(opts.stop_file(), b"");
                    }
                }
                let cycles = HasScheduler::<BytesInput, State>::scheduler(&fuzzer).queue_cycles();
                if cycles != reported_cycles {
                    reported_cycles = cycles;
                    report(&mut state, mgr, "cycles", UserStatsValue::Number(cycles))?;
                }
                let end = stopped || deadline.is_some_and(|d| Instant::now() >= d) || opts.stop_file().exists();
                if stats.update(&state, cycles, executor.exec_timeout(), end)? {
                    comux_share::write(&state, &dir)?;
                }
                if end {
                    return Ok(());
                }
            }
        }};
    }
    let dictionary = tokens_mutations().merge(tuple_list!(DictSwap));
    if opts.http_mutators {
        fuzz_with!(havoc_mutations().merge(dictionary).merge(http_mutations()))
    } else {
        fuzz_with!(havoc_mutations().merge(dictionary))
    }
}

/// The `queue/` folders of the AFL++ instances in the sync folders (`DIR/NAME/queue`, or
/// `DIR/queue` for a single instance).
fn afl_queues(dirs: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    let mut queues = Vec::new();
    for dir in dirs {
        if dir.join("queue").is_dir() {
            queues.push(dir.join("queue"));
        }
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        queues.extend(entries.flatten().map(|e| e.path().join("queue")).filter(|q| q.is_dir()));
    }
    queues.sort();
    queues
}

/// A fork server builder for one copy of the server on a free port, fed through the file
/// `input`, and the command line it runs.
fn server(
    opts: &Options,
    role: &Role,
    root: &Path,
    library: &Path,
    input: &Path,
) -> Result<(ForkserverExecutorBuilder<'static, SelfRemovingShMemProvider>, Vec<OsString>), Error> {
    let target = role.target;
    // The test cases go to the server in shared memory (`__AFL_SHM_FUZZ_ID`), so a server that
    // closes or reuses fd 0 still gets them; the provider lives as long as the executor.
    let inputs: &'static mut SelfRemovingShMemProvider = Box::leak(Box::new(SelfRemovingShMemProvider::new()?));
    let command = target.command(port::free_port().map_err(|e| Error::illegal_state(e.to_string()))?, root);
    let mut builder = ForkserverExecutor::builder()
        .program(&command[0])
        .args(&command[1..])
        .env("LD_PRELOAD", library)
        .env(env::name(env::OUTPUT), "0")
        .env(env::name(env::NETNS), preload::netns())
        // Absolute: a server that goes into the background changes to `/` first.
        .env(env::name(env::FINDING_FILE), std::path::absolute(finding_file(&role.dir))?)
        .env(env::name(env::ERROR_FILE), std::path::absolute(sockfuzz_error_file(&role.dir))?)
        // At once: a candidate is re-run patiently before it is saved (`executor`).
        .env(env::name(env::IDLE), "0")
        .envs(preload::memory_env(target.mem_limit_mb, &format!("{}:{}", preload::ASAN_OPTIONS, preload::FUZZING_ASAN)))
        .input(InputLocation::StdIn { input_file: Some(InputFile::create(input)?) })
        .debug_child(std::env::var_os("FUZZER_DEBUG_CHILD").is_some())
        .coverage_map_size(MAP_SIZE)
        .max_input_size(MAX_INPUT)
        .is_deferred_frksrv(true)
        .kill_signal(Signal::SIGKILL)
        .timeout(opts.hang_timeout)
        .shmem_provider(inputs);
    if target.serves_root() {
        builder = builder.env(env::name(env::ROOT), root);
    }
    if let Some(cwd) = &target.cwd {
        builder = builder.current_dir(cwd.clone());
    }
    Ok((builder, command))
}

fn not_started(e: Error) -> Error {
    Error::illegal_state(format!(
        "the server did not start under the fork server (no handshake within {} s, or it exited): {e}",
        STARTUP_LIMIT.as_secs()
    ))
}

/// Kill our children (the fork server) if the handshake has not happened in time: LibAFL's
/// handshake read has no timeout of its own and would block forever.
fn watchdog(started: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let deadline = Instant::now() + STARTUP_LIMIT;
        while Instant::now() < deadline {
            if started.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let me = nix::unistd::getpid();
        let children = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
        for pid in children.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            // A child process we started.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    });
}

/// Load the seeds (or, with --resume, this instance's old queue) into the corpus, AFL-named.
/// Seeds that crash or hang the server are left out of the corpus (as AFL++'s dry run does; a
/// new crash or named hang among them is saved) and named in the result: "NAME (hang: ...)".
fn load_seeds<Z>(
    opts: &Options,
    reload: bool,
    dir: &Path,
    state: &mut State,
    fuzzer: &mut Z,
    executor: &mut ServerExecutorOf,
    mgr: &mut Mgr,
) -> Result<Vec<String>, Error>
where
    Z: Evaluator<ServerExecutorOf, Mgr, BytesInput, State>
        + ExecutesInput<ServerExecutorOf, Mgr, BytesInput, State>
        + ExecutionProcessor<Mgr, BytesInput, Observers, State>,
{
    let mut inputs: Vec<(Loading, Vec<u8>)> = Vec::new();
    if reload {
        let mut old: Vec<_> =
            std::fs::read_dir(dir.join("queue"))?.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        old.sort();
        for path in old {
            let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if name.starts_with("id:") {
                inputs.push((Loading::Resumed(name), std::fs::read(&path)?));
            }
        }
    }
    if inputs.is_empty() {
        inputs = opts.seeds.iter().map(|(name, bytes)| (Loading::Seed(name.clone()), bytes.clone())).collect();
    }
    let mut left_out = Vec::new();
    for (loading, bytes) in inputs {
        let name = match &loading {
            Loading::Seed(name) | Loading::Resumed(name) => name.clone(),
        };
        let input = BytesInput::new(bytes);
        state.add_metadata(loading);
        let kind = fuzzer.execute_input(state, executor, mgr, &input)?;
        let added = if kind == ExitKind::Ok {
            fuzzer.add_input(state, executor, mgr, input).map(drop)
        } else {
            let why = match (kind, state.metadata::<LastRun>().ok()) {
                (ExitKind::Crash, Some(LastRun { signal: Some(sig), .. })) => {
                    format!("crash: {}", preload::signal_name(*sig))
                }
                (ExitKind::Crash, _) => "crash".to_string(),
                (_, Some(LastRun { hang: Some(Wait::Idle | Wait::Stuck), .. })) => {
                    "hang: left the connection open".to_string()
                }
                (_, Some(LastRun { hang: Some(Wait::Blocked), .. })) => {
                    "hang: one slow client blocks the others".to_string()
                }
                _ => "hang: timed out".to_string(),
            };
            left_out.push(format!("{name} ({why})"));
            // A seed that is only too slow for the timeout (eight connections to a slow server)
            // is no finding, as in AFL++'s dry run; one that crashes or that the verdicts name is.
            let slow = matches!(state.metadata::<LastRun>(), Ok(LastRun { hang: Some(Wait::Timeout), .. }));
            if slow {
                Ok(())
            } else {
                let observers = executor.observers();
                fuzzer.evaluate_execution(state, mgr, &input, &*observers, &kind, true).map(drop)
            }
        };
        let _ = state.metadata_map_mut().remove::<Loading>();
        added?;
    }
    Ok(left_out)
}

/// The spin verdict's bound (the preload's `spin`): four times the slowest seed's run, at least
/// [`SPIN_FLOOR`], and at most a third of the exec timeout (or none, where that is below the floor).
fn spin_bound(slowest: Duration, exec_timeout: Duration) -> Duration {
    let bound = (slowest * 4).max(SPIN_FLOOR).min(exec_timeout / 3);
    if bound < SPIN_FLOOR {
        Duration::ZERO
    } else {
        bound
    }
}

/// The shortest spin bound: a few of the client thread's looks at `/proc`.
const SPIN_FLOOR: Duration = Duration::from_millis(2);

type Observers = (Edges, (TimeObserver, (States, ())));
type ServerExecutorOf =
    ServerExecutor<BytesInput, Observers, State, <SelfRemovingShMemProvider as ShMemProvider>::ShMem>;

/// Send a per-instance figure (or the instance's name) to the broker's status display.
fn report(state: &mut State, mgr: &mut Mgr, name: &'static str, value: UserStatsValue) -> Result<(), Error> {
    let op = if value.is_numeric() { AggregatorOps::Sum } else { AggregatorOps::None };
    let event =
        Event::UpdateUserStats { name: Cow::Borrowed(name), value: UserStats::new(value, op), phantom: PhantomData };
    let executions = *state.executions();
    mgr.fire(state, EventWithStats::with_current_time(event, executions))
}

/// A stage that records which stage family produced the inputs that follow (`op:` in names).
/// The last one, "sync", covers the events processed after the stages: imported entries.
pub struct SetOp(&'static str);

impl<E, EM, S: HasMetadata, Z> libafl::stages::Stage<E, EM, S, Z> for SetOp {
    fn perform(&mut self, _: &mut Z, _: &mut E, state: &mut S, _: &mut EM) -> Result<(), Error> {
        state.add_metadata(CurrentOp::new(self.0));
        Ok(())
    }
}

impl<S> libafl::stages::Restartable<S> for SetOp {
    fn should_restart(&mut self, _: &mut S) -> Result<bool, Error> {
        Ok(true)
    }
    fn clear_progress(&mut self, _: &mut S) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spin_bound_is_four_slowest_seeds_within_the_floor_and_a_third_of_the_timeout() {
        let ms = Duration::from_millis;
        // Fast seeds: the floor.
        assert_eq!(spin_bound(Duration::from_micros(300), ms(50)), SPIN_FLOOR);
        // Slower seeds: four times the slowest.
        assert_eq!(spin_bound(ms(3), ms(50)), ms(12));
        // Never more than a third of the exec timeout (`-t` set by hand, or slow seeds).
        assert_eq!(spin_bound(ms(40), ms(200)), ms(200) / 3);
        // A timeout too short for the floor's looks: no spin verdict.
        assert_eq!(spin_bound(Duration::from_micros(300), ms(5)), Duration::ZERO);
    }
}
