//! Replaying a file under the preload (`runner::run`, the run of `fuzzer run`) against the triaged
//! build, `--runs` times, with triage's limits and ASan options, and gdb where ASan cannot say
//! where a crash or a hang is.

use super::pool::on_all_cores;
use super::signature::{self, Signature};
use crate::report::findings::Finding;
use crate::report::symbolize::Symbolizer;
use crate::runner::preload;
use crate::runner::target::Target;
use crate::runner::{self, Finished, Limits};
use anyhow::Result;
use contract::env;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a replay may take: a hang file must hang past it, and the campaign's hang timeout
/// is 1 s by default.
const RUN_LIMIT: Duration = Duration::from_secs(2);
/// Files of a group whose first run failed its way, after which the group is settled: its other
/// files are run once when triage's time is bounded.
const SETTLED: usize = 3;
/// How long a run that takes a hang's stacks waits first: the verdicts that make a hang are off
/// there, and a server that left our connection open or spins does so long before.
const PLACED_RUN_LIMIT: Duration = Duration::from_millis(500);

/// Runs one target the way triage needs.
pub struct Replayer<'a> {
    pub target: &'a Target,
    /// The web root the server serves (a copy in `OUT/triage/root`).
    pub root: PathBuf,
    /// The folder the target was built in: frames in files under it are the server's.
    pub sources: PathBuf,
    pub symbolizer: Symbolizer,
    /// gdb is there to place hangs, and crashes of a build without ASan.
    pub gdb: bool,
    /// When triage's time ends, if it is bounded (after a campaign): no run starts after.
    pub until: Option<Instant>,
}

impl Replayer<'_> {
    /// Every file `runs` times; the signature of each run (None: it did not fail; no runs at
    /// all: triage's time ran out first). A hang's place comes from one more run with gdb
    /// (`placed`); its other runs only say whether it hangs.
    ///
    /// With a time bound (after a campaign), in proportion: every file once, crashes first (a
    /// run of one takes milliseconds, of a hang up to the run limit), then the other runs for
    /// the files that say how a group reproduces: its first [`SETTLED`] files, and every file
    /// whose first run did not fail. The other files of a settled group are run once.
    pub fn replay_all(&self, files: &[Finding], runs: usize) -> Vec<Vec<Option<Signature>>> {
        if self.until.is_none() {
            return on_all_cores(files, "file(s) replayed", |file| self.runs_of(file, runs, None));
        }
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by_key(|&i| files[i].hang); // stable: crashes, then hangs, each in file order
        let firsts = on_all_cores(&order, "file(s) replayed", |&i| self.runs_of(&files[i], 1, None));
        let mut replayed: Vec<Vec<Option<Signature>>> = vec![Vec::new(); files.len()];
        for (i, first) in order.into_iter().zip(firsts) {
            replayed[i] = first;
        }
        let mut seen: HashMap<_, usize> = HashMap::new();
        let again: Vec<usize> = (0..files.len())
            .filter(|&i| match replayed[i].first() {
                None => false, // out of time
                Some(None) => true,
                Some(Some(signature)) => {
                    let n = seen.entry(signature.key()).or_default();
                    *n += 1;
                    *n <= SETTLED
                }
            })
            .collect();
        if runs > 1 && !again.is_empty() && self.in_time() {
            let more = on_all_cores(&again, "file(s) replayed again", |&i| {
                self.runs_of(&files[i], runs - 1, replayed[i][0].as_ref())
            });
            for (i, more) in again.into_iter().zip(more) {
                replayed[i].extend(more);
            }
        }
        replayed
    }

    /// `runs` runs of `file` while triage has time, placed as `placed` (an earlier run's
    /// signature with its place), else as a run of its own under gdb places them.
    fn runs_of(&self, file: &Finding, runs: usize, placed: Option<&Signature>) -> Vec<Option<Signature>> {
        let mut runs: Vec<_> =
            (0..runs).map_while(|_| self.in_time().then(|| self.signature_of(&file.bytes, false))).collect();
        // A run with no place of its own that failed as `placed` did (a hang being any kind of
        // hang) is where `placed` is.
        let place = |runs: &mut [Option<Signature>], placed: &Signature| {
            let like = |s: &Signature| s.kind == placed.kind || (s.is_hang() && placed.is_hang());
            for run in runs.iter_mut().flatten().filter(|s| s.frames.is_empty() && like(s)) {
                run.frames.clone_from(&placed.frames);
                run.callee.clone_from(&placed.callee);
            }
        };
        if let Some(placed) = placed.filter(|p| !p.frames.is_empty()) {
            place(&mut runs, placed);
            return runs;
        }
        // A crash without ASan's report: its place from gdb, once.
        if runs.iter().flatten().any(|s| s.frames.is_empty() && s.is_signal()) && self.in_time() {
            if let Some(placed) = self.crash_under_gdb(&file.bytes) {
                place(&mut runs, &placed);
            }
        }
        if runs.iter().flatten().any(Signature::is_hang) && self.in_time() {
            if let Some(placed) = self.signature_of(&file.bytes, true).filter(Signature::is_hang) {
                place(&mut runs, &placed);
            }
        }
        runs
    }

    /// Whether triage may start another run (it has no bound, or is within it).
    pub fn in_time(&self) -> bool {
        self.until.is_none_or(|until| Instant::now() < until)
    }

    /// One run of `input`: how it failed, if it did (a run that could not be made counts as not
    /// failing). `placed`: a hang gets the place where the server waits or spins, from gdb.
    pub fn signature_of(&self, input: &[u8], placed: bool) -> Option<Signature> {
        let placed = placed && self.gdb;
        let finished = self.run(input, placed).ok()?;
        let signature = signature::of_run(&finished, input, &self.sources, &self.root, &self.symbolizer)?;
        if placed && signature.is_hang() {
            let (frames, callee) = signature::hang_place(&finished.stacks, &self.sources);
            return Some(Signature { frames, callee, ..signature });
        }
        Some(signature)
    }

    /// `placed`: the preload's hang verdicts off (the server is left waiting or spinning, for
    /// gdb to see where), and the stacks taken at a shorter limit.
    fn run(&self, input: &[u8], placed: bool) -> Result<Finished> {
        self.with_setup(placed, |command, envs, cwd, limits| {
            runner::run(command, envs, cwd, Some(input), limits, false)
        })
    }

    /// A run of `input` under gdb, for a build without ASan (whose report has the stack): the
    /// signal and the place of its crash, if it crashed where gdb could see.
    pub fn crash_under_gdb(&self, input: &[u8]) -> Option<Signature> {
        if !self.gdb {
            return None;
        }
        let backtrace = self
            .with_setup(false, |command, envs, cwd, limits| {
                crate::gdb::crash_backtrace(command, envs, cwd, input, limits)
            })
            .ok()?;
        signature::gdb_crash(&backtrace, &self.sources)
    }

    /// Call `go` with the command, environment, folder and limits of one run.
    fn with_setup<R>(
        &self,
        placed: bool,
        go: impl FnOnce(&[std::ffi::OsString], &[(&str, &OsStr)], Option<&Path>, Limits) -> Result<R>,
    ) -> Result<R> {
        let target = self.target;
        let command = target.command(crate::port::free_port()?, &self.root);
        // ASan's handlers on: a SEGV or an abort gets a report with the call stack too. Not
        // symbolized (see `symbolize`). Only the first stack is read, but a leak's is where it
        // was allocated: deep enough to reach the server's code through a library's.
        let asan = format!(
            "{}:handle_segv=1:handle_sigbus=1:handle_sigfpe=1:handle_sigill=1:handle_abort=1:symbolize=0:\
             malloc_context_size=16:max_allocation_size_mb={}",
            preload::ASAN_OPTIONS,
            target.mem_limit_mb
        );
        let mut envs: Vec<(&str, &OsStr)> = vec![("ASAN_OPTIONS", OsStr::new(&asan))];
        if target.serves_root() {
            envs.push((env::name(env::ROOT), self.root.as_os_str()));
        }
        if placed {
            envs.extend([(env::name(env::IDLE), OsStr::new("86400000")), (env::name(env::EOF_SPIN), OsStr::new("0"))]);
        }
        let run = if placed { PLACED_RUN_LIMIT } else { RUN_LIMIT };
        let limits = Limits { listen: Duration::from_secs(10), run, mem_mb: target.mem_limit_mb, stacks: None };
        let limits = Limits { stacks: placed.then_some(crate::gdb::stacks::attach_stacks), ..limits };
        go(&command, &envs, target.cwd.as_deref(), limits)
    }
}
