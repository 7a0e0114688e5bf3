//! The fork-server executor with AFL++'s timeout rule, the preload's verdicts and the deadline.
//!
//! A run that timed out, or that the preload ended early because the server sat idle with our
//! connection open (its idle verdict), is a hang candidate. As in AFL++, a candidate is re-run
//! only when its trace, simplified to hit / not hit, reaches map entries no earlier candidate
//! reached: once, with the hang timeout and without the idle verdict ("patient"). Only a re-run
//! that times out again is a hang to save (`LastRun::hang`); the others cost one short run. A
//! run the preload ended with its EOF-spin status is a hang at once (it cannot be a slow server),
//! and so is one it found idle with nothing left that could wake the server (no timeout, no
//! timer, no child: its "stuck" status). One it ended with its spin verdict (a thread ran the
//! spin bound, derived from the seeds' run times, without a call, a fault or new coverage) is
//! re-run once by the same rule instead of patiently: spinning again, it is a hang;
//! one it ended with the traversal signal is a crash whose path the preload left in `finding_file`.
//! One it ended with a leak's signal (and its description in `finding_file`) served the test
//! case all the same: the run counts as a normal one (its input may join the queue), with the
//! leak noted for the objective, which saves it in `crashes/`.
//!
//! (LibAFL's `VerifyTimeoutsStage` re-runs every timeout, at twice the exec timeout: on a server
//! that leaves many connections open that is a second, long run for most runs.)
//!
//! In persistent mode (`--persistent`) a normal run's process goes on to serve the next test
//! case (the fork server reports it "stopped"). Any other result of a process that served
//! earlier test cases (a crash, a hang, a failure to drive it) may depend on what they left
//! behind: the test case is run again in a fresh process (the other one has ended), and only
//! that result counts, unless it is a crash or hang candidate that adds nothing to those seen
//! (which is dropped anyway). One seen only in the reused process is "persistent-only"; when
//! those pass [`FALLBACK_AFTER`] and 1% of the reused runs, the instance goes back to one test
//! case per process (control page byte 1). The fresh re-run sets byte 2 (`CONFIRM`), so that the
//! memory-leak check is made whatever its time budget.

use super::findings::{read_leaks, LastRun, Leak, LeakKind, Wait, PERSISTENT};
use super::seen::Seen;
use super::Edges;
use crate::runner::preload::{self, EXIT_BLOCKED, EXIT_EOF_SPIN, EXIT_IDLE, EXIT_SETUP, EXIT_SPIN, EXIT_STUCK};
use crate::runner::preload::{SIG_FD_LEAK, SIG_MEM_LEAK, SIG_TRAVERSAL};
use contract::control::{CONFIRM, FORK_MODE, PATIENT, SPIN_US};
use libafl::executors::forkserver::ForkserverExecutor;
use libafl::executors::SetTimeout;
use libafl::executors::{Executor, ExitKind, HasObservers};
use libafl::observers::{MapObserver, ObserversTuple};
use libafl::state::HasExecutions;
use libafl::{Error, HasMetadata};
use libafl_bolts::shmem::{ShMem, UnixShMem};
use libafl_bolts::tuples::{Handle, MatchNameRef, RefIndexable};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct ServerExecutor<I, OT, S, SHM> {
    inner: ForkserverExecutor<I, OT, S, SHM>,
    edges: Handle<Edges>,
    exec_timeout: Duration,
    hang_timeout: Duration,
    finding_file: PathBuf,
    /// Where the preload says why it could not drive the server (`SOCKFUZZ_ERROR_FILE`).
    error_file: PathBuf,
    /// The preload's control page (`SOCKFUZZ_CONTROL_SHM`): byte 0 set = a patient run.
    control: UnixShMem,
    /// Map entries reached by some hang candidate (AFL++'s virgin timeout map, hit / not hit).
    candidates: Seen,
    /// The objective's crash map, followed here: a crash of a reused process that it would not
    /// save needs no fresh re-run.
    crashes: Seen,
    /// The same for leaks: the objective's map, and the kinds of leak seen.
    leaks: Seen,
    leak_kinds: HashSet<String>,
    /// The last run's finding, if it ended by an oracle's signal: the signal and what the
    /// preload wrote in `finding_file`.
    finding: Option<(i32, String)>,
    /// The campaign's end: runs past it are refused, so a stage of slow runs cannot outlast it.
    deadline: Option<Instant>,
    /// The share of wall-clock time this instance may spend in runs (`pace`), if limited.
    share: Option<f64>,
    /// Persistent mode: the last run's process goes on to serve the next test case (the fork
    /// server reports it stopped, AFL++'s way).
    stopped: bool,
    persistent: Persistent,
    /// Where the persistent-mode figures go (`PERSISTENT`).
    persistent_file: PathBuf,
}

/// How persistent mode fares in one instance.
#[derive(Debug, Default)]
struct Persistent {
    /// Test cases run (re-runs left out).
    runs: u64,
    /// Runs in a process that had served earlier test cases.
    reused: u64,
    /// Results of reused processes run again in a fresh one.
    rerun: u64,
    /// Results of reused processes that a fresh process did not give.
    only: u64,
    /// Gone back to one test case per process.
    fallen_back: bool,
    /// When the figures were last written.
    written: Option<Instant>,
}

/// Persistent-only results past which (and past 1% of the reused runs) an instance falls back.
const FALLBACK_AFTER: u64 = 20;

/// The longest pause `pace` makes after one run (a patient re-run can take seconds).
const MAX_PAUSE: Duration = Duration::from_secs(1);

impl<I, OT, S, SHM> ServerExecutor<I, OT, S, SHM> {
    pub fn new(
        inner: ForkserverExecutor<I, OT, S, SHM>,
        edges: Handle<Edges>,
        hang_timeout: Duration,
        dir: &Path,
        control: UnixShMem,
        deadline: Option<Instant>,
    ) -> Self {
        let (finding_file, error_file) = (finding_file(dir), sockfuzz_error_file(dir));
        let _ = std::fs::remove_file(&error_file);
        ServerExecutor {
            inner,
            edges,
            exec_timeout: hang_timeout,
            hang_timeout,
            finding_file,
            error_file,
            control,
            candidates: Seen::load(&dir.join(".seen-hangs")),
            crashes: Seen::mirror(&dir.join(super::objective::SEEN_CRASHES)),
            leaks: Seen::mirror(&dir.join(super::objective::SEEN_LEAKS)),
            leak_kinds: read_leaks(dir).into_values().map(|(kind, detail)| Leak { kind, detail }.key()).collect(),
            finding: None,
            deadline,
            share: None,
            stopped: false,
            persistent: Persistent::default(),
            persistent_file: dir.join(PERSISTENT),
        }
    }

    /// Spend at most `share` of the wall-clock time in runs, pausing after each. This is how a
    /// instance yields its core to another: the kernel gives a niced or SCHED_IDLE co-runner
    /// nearly half of a core all the same, through the many short waits of a run.
    pub fn pace(&mut self, share: f64) {
        self.share = Some(share);
    }

    /// Set the spin verdict's bound (after calibration on the seeds; zero: none).
    pub fn set_spin_bound(&mut self, bound: Duration) {
        let us = u32::try_from(bound.as_micros()).unwrap_or(u32::MAX);
        self.control[SPIN_US..SPIN_US + 4].copy_from_slice(&us.to_ne_bytes());
    }

    /// Set the short timeout (after calibration on the seeds).
    pub fn set_exec_timeout(&mut self, timeout: Duration) {
        self.exec_timeout = timeout;
        self.inner.set_timeout(timeout);
    }

    pub fn exec_timeout(&self) -> Duration {
        self.exec_timeout
    }

    pub fn inner(&self) -> &ForkserverExecutor<I, OT, S, SHM> {
        &self.inner
    }

    fn set_patient(&mut self, patient: bool) {
        self.control[PATIENT] = u8::from(patient);
    }

    /// Note a result of a reused process that a fresh one did not give; fall back to fork mode
    /// when they are too many.
    fn persistent_only(&mut self) {
        let p = &mut self.persistent;
        p.only += 1;
        if !p.fallen_back && p.only >= FALLBACK_AFTER && p.only * 100 >= p.reused {
            p.fallen_back = true;
            self.control[FORK_MODE] = 1;
            println!(
                "[persistent] {}: {} of {} results of reused server processes did not happen in a fresh one \
                 (the server keeps state from one connection to the next): one test case per process from now on",
                self.persistent_file.parent().and_then(|d| d.file_name()).unwrap_or_default().to_string_lossy(),
                p.only,
                p.reused
            );
        }
        self.write_persistent(true);
    }

    /// Write the persistent-mode figures (`PERSISTENT`), at most once a second unless `now`.
    fn write_persistent(&mut self, now: bool) {
        let p = &mut self.persistent;
        if !now && p.written.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        p.written = Some(Instant::now());
        let mode = if p.fallen_back { "fork (fallback)" } else { "persistent" };
        let rows = [
            ("runs", p.runs.to_string()),
            ("reused_runs", p.reused.to_string()),
            ("rerun_fresh", p.rerun.to_string()),
            ("persistent_only", p.only.to_string()),
            ("mode", mode.to_string()),
        ];
        // Laid out as `fuzzer_stats`.
        let text: String = rows.iter().map(|(key, value)| format!("{key:<18}: {value}\n")).collect();
        let _ = std::fs::write(&self.persistent_file, text);
    }
}

/// Where the preload describes a path traversal or a leak before it ends the run
/// (`SOCKFUZZ_FINDING_FILE`), in instance folder `dir`.
pub fn finding_file(dir: &Path) -> PathBuf {
    dir.join(".finding")
}

/// Where the preload says why it cannot drive the server (`SOCKFUZZ_ERROR_FILE`).
pub fn sockfuzz_error_file(dir: &Path) -> PathBuf {
    dir.join(".sockfuzz_error")
}

impl<EM, I, OT, S, SHM, Z> Executor<EM, I, S, Z> for ServerExecutor<I, OT, S, SHM>
where
    I: libafl::inputs::Input + libafl::inputs::HasTargetBytes,
    OT: ObserversTuple<I, S> + MatchNameRef,
    S: HasExecutions + HasMetadata,
    SHM: ShMem,
    ForkserverExecutor<I, OT, S, SHM>: Executor<EM, I, S, Z> + HasObservers<Observers = OT>,
{
    fn run_target(&mut self, fuzzer: &mut Z, state: &mut S, mgr: &mut EM, input: &I) -> Result<ExitKind, Error> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::shutting_down());
        }
        let start = Instant::now();
        let result = self.run_with_rules(fuzzer, state, mgr, input);
        if let Some(share) = self.share {
            let pause = start.elapsed().mul_f64((1.0 - share) / share).min(MAX_PAUSE);
            let until = self.deadline.map_or(Instant::now() + pause, |d| d.min(Instant::now() + pause));
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
        result
    }
}

impl<I, OT, S, SHM> ServerExecutor<I, OT, S, SHM>
where
    I: libafl::inputs::Input + libafl::inputs::HasTargetBytes,
    OT: ObserversTuple<I, S> + MatchNameRef,
    S: HasExecutions + HasMetadata,
    SHM: ShMem,
{
    /// One run, with the timeout rule applied and its findings noted in `LastRun`.
    fn run_with_rules<EM, Z>(
        &mut self,
        fuzzer: &mut Z,
        state: &mut S,
        mgr: &mut EM,
        input: &I,
    ) -> Result<ExitKind, Error>
    where
        ForkserverExecutor<I, OT, S, SHM>: Executor<EM, I, S, Z> + HasObservers<Observers = OT>,
    {
        let reused = self.stopped;
        let mut kind = self.run_inner(fuzzer, state, mgr, input)?;
        self.persistent.runs += 1;
        if self.persistent.reused > 0 {
            self.write_persistent(false); // in persistent mode (after a fallback too)
        }
        if reused {
            self.persistent.reused += 1;
            // A crash or hang candidate that adds nothing to what was seen is dropped anyway.
            let observers = self.inner.observers();
            let map = observers[&self.edges].as_ref();
            let leak = self.leak();
            let known = match &leak {
                // Saved already, or it never will be (`objective`): a leak that served anyway.
                Some(leak) => !self.leaks.is_new(map) && self.leak_kinds.contains(&leak.key()),
                None => {
                    (kind == ExitKind::Crash && !self.crashes.is_new(map))
                        || (self.wait(kind).is_some() && !self.candidates.is_new(map))
                }
            };
            if !self.ended_normally(kind) && !known {
                self.persistent.rerun += 1;
                // Believed only if a fresh process gives it too (this one has ended).
                self.control[CONFIRM] = 1;
                let rerun = self.run_again(fuzzer, state, mgr, input);
                self.control[CONFIRM] = 0;
                kind = rerun?;
                if self.ended_normally(kind) {
                    self.persistent_only();
                }
            }
        }
        if self.map_empty() {
            // Ended before the test case began (the preload sets entry 0 as it begins): on a
            // loaded machine a new process can wait that long for a CPU. That says nothing of
            // the input, and LibAFL's calibration stops the client on a run that left the map
            // empty. Once more, patiently; if that is empty too, the run counts as one that
            // began and reached nothing (entry 0 alone), never as a broken instrumentation.
            kind = self.patient_run(fuzzer, state, mgr, input)?;
            if self.map_empty() {
                self.inner.observers_mut()[&self.edges].as_mut().set(0, 1);
            }
        }
        self.check_driven(kind)?;
        let mut wait = self.wait(kind);
        let mut hang = false;
        if let Some(first) = wait {
            kind = ExitKind::Timeout;
            let map = &self.inner.observers()[&self.edges];
            if self.candidates.add(&map.as_ref()[..]) {
                // An EOF spin or a server nothing can wake is hung for certain; a timeout at the
                // hang timeout was already as patient as a re-run would be.
                hang = matches!(first, Wait::EofSpin | Wait::Stuck)
                    || (first == Wait::Timeout && self.exec_timeout >= self.hang_timeout);
                if first == Wait::Spin {
                    // Once more by the same rule, on a fresh map: a spin is no slow server.
                    kind = self.run_again(fuzzer, state, mgr, input)?;
                    hang = self.wait(kind) == Some(Wait::Spin);
                    if hang {
                        kind = ExitKind::Timeout;
                    }
                }
                if !hang {
                    // Slow or idle is not hung: run it again, patiently, on a fresh map.
                    kind = self.patient_run(fuzzer, state, mgr, input)?;
                    hang = self.wait(kind).is_some();
                    if hang {
                        kind = ExitKind::Timeout;
                    }
                }
            }
            // The first verdict names the hang (the re-run can only time out).
            wait = wait.filter(|_| hang);
        }
        let status = self.inner.forkserver().status();
        let signal = (kind == ExitKind::Crash && libc::WIFSIGNALED(status)).then(|| libc::WTERMSIG(status));
        let leak = self.leak();
        let traversal = match self.finding.take() {
            Some((SIG_TRAVERSAL, text)) => Some(text.trim_end().to_string()),
            _ => None,
        };
        let observers = self.inner.observers();
        let map = observers[&self.edges].as_ref();
        if let Some(leak) = &leak {
            // The server served the test case: it may join the queue (the objective saves the
            // leak itself), and a leak on every request does not stop fuzzing.
            kind = ExitKind::Ok;
            self.leaks.add(map);
            self.leak_kinds.insert(leak.key());
        }
        if kind == ExitKind::Crash {
            self.crashes.add(map);
        }
        state.add_metadata(LastRun { signal, traversal, leak, hang: wait });
        Ok(kind)
    }
}

impl<I, OT, S, SHM> ServerExecutor<I, OT, S, SHM>
where
    OT: ObserversTuple<I, S>,
    SHM: ShMem,
{
    /// One run of the fork server, noting whether its process goes on to the next test case
    /// (persistent mode: reported as stopped, AFL++'s way).
    fn run_inner<EM, Z>(&mut self, fuzzer: &mut Z, state: &mut S, mgr: &mut EM, input: &I) -> Result<ExitKind, Error>
    where
        ForkserverExecutor<I, OT, S, SHM>: Executor<EM, I, S, Z> + HasObservers<Observers = OT>,
    {
        let kind = self.inner.run_target(fuzzer, state, mgr, input);
        let status = self.inner.forkserver().status();
        self.stopped = kind.is_ok() && libc::WIFSTOPPED(status);
        self.finding = None;
        if matches!(kind, Ok(ExitKind::Crash)) && libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            if [SIG_TRAVERSAL, SIG_FD_LEAK, SIG_MEM_LEAK].contains(&signal) {
                self.finding = std::fs::read_to_string(&self.finding_file).ok().map(|text| (signal, text));
                // So that a signal of the server's own is never taken for a finding.
                let _ = std::fs::remove_file(&self.finding_file);
            }
        }
        kind
    }

    /// Whether the last run left the coverage map empty.
    fn map_empty(&self) -> bool {
        self.inner.observers()[&self.edges].as_ref().iter().all(|&e| e == 0)
    }

    /// The leak the last run found, if it ended by a leak's signal with the preload's finding.
    fn leak(&self) -> Option<Leak> {
        let kind = match self.finding.as_ref()?.0 {
            SIG_FD_LEAK => LeakKind::Descriptor,
            SIG_MEM_LEAK => LeakKind::Memory,
            _ => return None,
        };
        Some(Leak { kind, detail: preload::leak_detail(&self.finding.as_ref()?.1) })
    }

    /// Whether the last run ended as a normal one does: "stopped" to serve the next test case
    /// (persistent mode), or exited with status 0.
    fn ended_normally(&self, kind: ExitKind) -> bool {
        let status = self.inner.forkserver().status();
        kind == ExitKind::Ok
            && (libc::WIFSTOPPED(status) || (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0))
    }

    /// Run `input` again on a fresh map with the hang timeout and without the idle verdict.
    fn patient_run<EM, Z>(&mut self, fuzzer: &mut Z, state: &mut S, mgr: &mut EM, input: &I) -> Result<ExitKind, Error>
    where
        ForkserverExecutor<I, OT, S, SHM>: Executor<EM, I, S, Z> + HasObservers<Observers = OT>,
    {
        self.inner.set_timeout(self.hang_timeout);
        self.set_patient(true);
        let rerun = self.run_again(fuzzer, state, mgr, input);
        self.set_patient(false);
        self.inner.set_timeout(self.exec_timeout);
        rerun
    }

    /// Run `input` again, on a fresh map.
    fn run_again<EM, Z>(&mut self, fuzzer: &mut Z, state: &mut S, mgr: &mut EM, input: &I) -> Result<ExitKind, Error>
    where
        ForkserverExecutor<I, OT, S, SHM>: Executor<EM, I, S, Z> + HasObservers<Observers = OT>,
    {
        self.inner.observers_mut().pre_exec_all(state, input)?;
        self.run_inner(fuzzer, state, mgr, input)
    }

    /// An error if the preload could not drive the server in the last run (exit status 87):
    /// what it says is the harness's problem or the server's set-up, never a finding, and the
    /// next runs would fail alike.
    fn check_driven(&self, kind: ExitKind) -> Result<(), Error> {
        let status = self.inner.forkserver().status();
        if kind != ExitKind::Ok || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != EXIT_SETUP {
            return Ok(());
        }
        let why = std::fs::read_to_string(&self.error_file).unwrap_or_default();
        Err(Error::illegal_state(format!(
            "sockfuzz could not drive the server in a run, so this client stopped: {}",
            why.trim_end()
        )))
    }

    /// Why the last run did not end on its own, if it did not: timeout, EOF spin or idle.
    fn wait(&self, kind: ExitKind) -> Option<Wait> {
        let status = self.inner.forkserver().status();
        let exited = |code| kind == ExitKind::Ok && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == code;
        match kind {
            ExitKind::Timeout => Some(Wait::Timeout),
            _ if exited(EXIT_EOF_SPIN) => Some(Wait::EofSpin),
            _ if exited(EXIT_SPIN) => Some(Wait::Spin),
            _ if exited(EXIT_IDLE) => Some(Wait::Idle),
            _ if exited(EXIT_STUCK) => Some(Wait::Stuck),
            _ if exited(EXIT_BLOCKED) => Some(Wait::Blocked),
            _ => None,
        }
    }
}

impl<I, OT, S, SHM> HasObservers for ServerExecutor<I, OT, S, SHM>
where
    ForkserverExecutor<I, OT, S, SHM>: HasObservers<Observers = OT>,
{
    type Observers = OT;

    fn observers(&self) -> RefIndexable<&Self::Observers, Self::Observers> {
        self.inner.observers()
    }

    fn observers_mut(&mut self) -> RefIndexable<&mut Self::Observers, Self::Observers> {
        self.inner.observers_mut()
    }
}
