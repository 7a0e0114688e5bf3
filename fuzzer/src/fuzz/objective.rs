//! The objective: which crashes and hangs are saved (AFL++'s novelty rule) and under which
//! AFL++ names, in `crashes/` and `hangs/` with their lists (`hangs.tsv`, `traversals.tsv`,
//! `leaks.tsv`).
//!
//! A leak is saved in `crashes/` too (its `sig:` the preload's leak signal), but by the objective
//! itself, which then says "not a solution": LibAFL keeps a solution out of the queue, and a
//! server that leaks on every request would otherwise leave nothing to fuzz from. Leaks have a
//! novelty map of their own (a leak on a path some crash took is still new; the first leak of
//! its kind is new anyway), and at most [`LEAK_FILES`] files per kind of leak (what leaked, for
//! descriptors): one leak on the common path would otherwise fill `crashes/` with every new path.

use super::findings::{now_secs, read_leaks, Findings, LastRun, Leak, Loading, HANGS, LEAKS, TRAVERSALS};
use super::names::{map, origin};
use super::seen::Seen;
use super::Edges;
use libafl::corpus::Testcase;
use libafl::executors::ExitKind;
use libafl::feedbacks::{Feedback, StateInitializer};
use libafl::inputs::HasTargetBytes;
use libafl::state::{HasCorpus, HasExecutions, HasSolutions, HasStartTime};
use libafl::{Error, HasMetadata};
use libafl_bolts::tuples::{Handle, MatchName};
use libafl_bolts::Named;
use libafl_bolts::ToSlice;
use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Crash,
    Hang,
}

/// The objective: a crash that reached map entries no earlier crash reached (hit / not hit, like
/// AFL++'s virgin crash map, kept on disk), or a hang the executor confirmed (it keeps AFL's virgin timeout map). Saves
/// crashes in `crashes/`, hangs in `hangs/`, each with its own id counter.
pub struct Solutions {
    edges: Handle<Edges>,
    dir: PathBuf,
    command_line: String,
    /// How to run the server on one file (for `crashes/README.txt`).
    replay: Vec<OsString>,
    /// Map entries reached by earlier crashes (AFL++'s virgin crash map, hit / not hit).
    seen_crash: Seen,
    /// The same for leaks.
    seen_leak: Seen,
    /// Leak files saved per kind of leak (`Leak::key`), from `leaks.tsv`.
    leak_files: HashMap<String, usize>,
    pending: Option<Kind>,
}

impl Solutions {
    pub fn new(edges: Handle<Edges>, dir: &Path, command_line: String, replay: Vec<OsString>) -> Self {
        let seen_crash = Seen::load(&dir.join(SEEN_CRASHES));
        let seen_leak = Seen::load(&dir.join(SEEN_LEAKS));
        let mut leak_files = HashMap::new();
        for (kind, detail) in read_leaks(dir).into_values() {
            *leak_files.entry(Leak { kind, detail }.key()).or_default() += 1;
        }
        Solutions {
            edges,
            dir: dir.to_path_buf(),
            command_line,
            replay,
            seen_crash,
            seen_leak,
            leak_files,
            pending: None,
        }
    }
}

/// Where an instance keeps the map entries its crashes reached (`Seen`).
pub const SEEN_CRASHES: &str = ".seen-crashes";
/// ... and its leaks.
pub const SEEN_LEAKS: &str = ".seen-leaks";

/// Files saved per kind of leak, at most.
pub const LEAK_FILES: usize = 10;

/// Solution files already in `dir/sub` (a resumed run continues their ids).
pub fn count_files(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("id:")).count() as u64
    })
}

impl Named for Solutions {
    fn name(&self) -> &Cow<'static, str> {
        static NAME: Cow<'static, str> = Cow::Borrowed("Solutions");
        &NAME
    }
}

impl<S> StateInitializer<S> for Solutions {}

impl<EM, I, OT, S> Feedback<EM, I, OT, S> for Solutions
where
    I: HasTargetBytes,
    OT: MatchName,
    S: HasCorpus<I> + HasSolutions<I> + HasExecutions + HasStartTime + HasMetadata,
{
    fn is_interesting(
        &mut self,
        state: &mut S,
        _mgr: &mut EM,
        input: &I,
        observers: &OT,
        exit_kind: &ExitKind,
    ) -> Result<bool, Error> {
        self.pending = match exit_kind {
            ExitKind::Crash => self.seen_crash.add(map(observers, &self.edges)?).then_some(Kind::Crash),
            ExitKind::Timeout => {
                state.metadata::<LastRun>().is_ok_and(|last| last.hang.is_some()).then_some(Kind::Hang)
            }
            ExitKind::Ok => {
                let last = state.metadata::<LastRun>().ok();
                if let Some((leak, signal)) = last.and_then(|l| Some((l.leak.clone()?, l.signal))) {
                    self.save_leak(state, input, map(observers, &self.edges)?, &leak, signal)?;
                }
                None
            }
            _ => None,
        };
        Ok(self.pending.is_some())
    }

    fn append_metadata(
        &mut self,
        state: &mut S,
        _mgr: &mut EM,
        _observers: &OT,
        testcase: &mut Testcase<I>,
    ) -> Result<(), Error> {
        let kind = self.pending.take().ok_or_else(|| Error::illegal_state("solution without a verdict"))?;
        let last = state.metadata::<LastRun>().cloned().unwrap_or_default();
        let signal = last.signal;
        let source = source(state);
        let findings = state.metadata_or_insert_with(Findings::default);
        let (folder, name) = match kind {
            Kind::Crash => ("crashes", count_crash(findings, signal, &source)),
            Kind::Hang => {
                let name = format!("id:{:06},{source}", findings.hangs);
                findings.hangs += 1;
                findings.last_hang = now_secs();
                ("hangs", name)
            }
        };
        if let (Kind::Hang, Some(wait)) = (kind, last.hang) {
            append_line(&self.dir.join(HANGS), &format!("{name}\t{}", wait.name()))?;
        }
        if kind == Kind::Crash {
            let executions = *state.executions();
            state.metadata_mut::<Findings>()?.execs_at_crash = executions;
            self.write_readme()?;
            if let Some(traversal) = &last.traversal {
                append_line(&self.dir.join(TRAVERSALS), &format!("{name}\t{traversal}"))?;
            }
        }
        *testcase.file_path_mut() = Some(self.dir.join(folder).join(&name));
        *testcase.filename_mut() = Some(name);
        Ok(())
    }
}

/// Where the last run's input came from, for its name: `src:...` (`names::origin`), or the seed
/// or queue entry being loaded.
fn source<I, S>(state: &S) -> String
where
    S: HasCorpus<I> + HasExecutions + HasStartTime + HasMetadata,
{
    match state.metadata::<Loading>().ok() {
        Some(Loading::Seed(orig) | Loading::Resumed(orig)) => {
            format!("time:0,execs:{},orig:{orig}", state.executions())
        }
        None => origin(state),
    }
}

/// Count a crash file in `findings` (the crash count is its id): its name.
fn count_crash(findings: &mut Findings, signal: Option<i32>, source: &str) -> String {
    let name = format!("id:{:06},sig:{:02},{source}", findings.crashes, signal.unwrap_or(0));
    findings.crashes += 1;
    findings.last_crash = now_secs();
    findings.signals.push(signal.unwrap_or(0));
    name
}

fn append_line(path: &Path, line: &str) -> Result<(), Error> {
    let mut list = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    std::io::Write::write_all(&mut list, format!("{line}\n").as_bytes())?;
    Ok(())
}

impl Solutions {
    /// Save the input of a run that leaked in `crashes/` (listed in `leaks.tsv`), if its map
    /// reaches entries no earlier leak reached and its kind has fewer than [`LEAK_FILES`].
    fn save_leak<I: HasTargetBytes, S>(
        &mut self,
        state: &mut S,
        input: &I,
        map: &[u8],
        leak: &Leak,
        signal: Option<i32>,
    ) -> Result<(), Error>
    where
        S: HasCorpus<I> + HasExecutions + HasStartTime + HasMetadata,
    {
        let saved = self.leak_files.entry(leak.key()).or_default();
        // Both recorded: the first of its kind may reach nothing new.
        let (first, new) = (*saved == 0, self.seen_leak.add(map));
        if *saved >= LEAK_FILES || !(first || new) {
            return Ok(());
        }
        *saved += 1;
        let source = source(state);
        let executions = *state.executions();
        let findings = state.metadata_or_insert_with(Findings::default);
        let name = count_crash(findings, signal, &source);
        findings.leaks[leak.kind.index()] += 1;
        findings.execs_at_crash = executions;
        std::fs::write(self.dir.join("crashes").join(&name), input.target_bytes().to_slice())?;
        append_line(&self.dir.join(LEAKS), &format!("{name}\t{}\t{}", leak.kind.name(), leak.detail))?;
        self.write_readme()
    }

    /// AFL++ writes this with the first crash; tools skip it when counting.
    fn write_readme(&self) -> Result<(), Error> {
        let path = self.dir.join("crashes/README.txt");
        if !path.exists() {
            let text = format!(
                "Command line used to find this crash:\n\n{}\n\nEach file here holds exactly the bytes the fuzzer sent on one TCP connection.\n\
                 Replay one against your server (started normally, e.g. `./server -p 8080`) with:\n\n    fuzzer send 127.0.0.1 8080 < FILE\n\n\
                 or run the instrumented server on it under the fuzzer's preload (with --root, a path traversal is\n\
                 reported too):\n\n    fuzzer run --root ROOT -- {} < FILE\n",
                self.command_line,
                self.replay.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
            );
            std::fs::write(&path, text)?;
        }
        Ok(())
    }
}
