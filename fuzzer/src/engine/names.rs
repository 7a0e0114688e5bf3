//! AFL++ file names for queue entries, crashes and hangs, and the crash/hang de-duplication.
//!
//! Two feedbacks that are never "interesting" on their own for the queue (`QueueNames`, used
//! with OR), and one objective (`Solutions`) that decides and names crashes and hangs.

use super::findings::{now_secs, CurrentOp, Findings, LastRun, Loading, HANGS, TRAVERSALS};
use super::seen::Seen;
use super::Edges;
use libafl::corpus::{Corpus, Testcase};
use libafl::executors::ExitKind;
use libafl::feedbacks::{ExitKindLogic, Feedback, StateInitializer};
use libafl::state::{HasCorpus, HasExecutions, HasSolutions, HasStartTime};
use libafl::{Error, HasMetadata};
use libafl_bolts::tuples::{Handle, MatchName, MatchNameRef};
use libafl_bolts::Named;
use std::borrow::Cow;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The covered map of the last run (AFL-bucketed hit counts).
fn map<'a, OT: MatchName>(observers: &'a OT, edges: &Handle<Edges>) -> Result<&'a [u8], Error> {
    let observer = observers.get(edges).ok_or_else(|| Error::key_not_found("edges observer"))?;
    Ok(&observer.as_ref()[..])
}

/// `src:NNNNNN,time:MS,execs:N,op:OP` — where an input came from.
fn origin<I, S>(state: &S) -> String
where
    S: HasCorpus<I> + HasExecutions + HasStartTime + HasMetadata,
{
    let src = state.corpus().current().map_or(0, |id| id.0);
    let op = state.metadata::<CurrentOp>().map_or("havoc", |op| op.0.as_str());
    format!("src:{src:06},{},op:{op}", time_execs(state))
}

/// `time:MS,execs:N` — milliseconds since the start and executions so far.
fn time_execs<S: HasExecutions + HasStartTime>(state: &S) -> String {
    let time = libafl_bolts::current_time().saturating_sub(*state.start_time()).as_millis();
    format!("time:{time},execs:{}", state.executions())
}

/// Names queue entries like AFL++ and tracks which map entries the queue covers (`+cov`).
pub struct QueueNames {
    edges: Handle<Edges>,
    covered: Vec<bool>,
}

impl QueueNames {
    pub fn new(edges: Handle<Edges>) -> Self {
        QueueNames { edges, covered: Vec::new() }
    }
}

impl Named for QueueNames {
    fn name(&self) -> &Cow<'static, str> {
        static NAME: Cow<'static, str> = Cow::Borrowed("QueueNames");
        &NAME
    }
}

impl<S> StateInitializer<S> for QueueNames {}

impl<EM, I, OT, S> Feedback<EM, I, OT, S> for QueueNames
where
    OT: MatchName,
    S: HasCorpus<I> + HasExecutions + HasStartTime + HasMetadata,
{
    fn append_metadata(
        &mut self,
        state: &mut S,
        _mgr: &mut EM,
        observers: &OT,
        testcase: &mut Testcase<I>,
    ) -> Result<(), Error> {
        let map = map(observers, &self.edges)?;
        if self.covered.len() < map.len() {
            self.covered.resize(map.len(), false);
        }
        let mut new_edges = 0;
        for (i, _) in map.iter().enumerate().filter(|(_, &c)| c != 0) {
            if !self.covered[i] {
                self.covered[i] = true;
                new_edges += 1;
            }
        }
        let id = state.corpus().peek_free_id().0;
        let name = match state.metadata::<Loading>().ok() {
            Some(Loading::Resumed(name)) => name.clone(),
            Some(Loading::Seed(orig)) => format!("id:{id:06},time:0,execs:0,orig:{orig}"),
            None if state.metadata::<CurrentOp>().is_ok_and(|op| op.0 == "sync") => {
                format!("id:{id:06},sync:peer,{}", time_execs(state))
            }
            None => format!("id:{id:06},{}{}", origin(state), if new_edges > 0 { ",+cov" } else { "" }),
        };
        *testcase.filename_mut() = Some(name);
        let loading = state.has_metadata::<Loading>();
        let findings = state.metadata_or_insert_with(Findings::default);
        findings.edges += new_edges;
        if loading {
            findings.seeds += 1;
        } else {
            findings.last_find = now_secs();
        }
        Ok(())
    }
}

/// Which runs may enter the queue: those that ended by themselves (`ExitKindFeedback<Ran>`).
pub struct Ran;

impl ExitKindLogic for Ran {
    const NAME: Cow<'static, str> = Cow::Borrowed("Ran");

    fn check_exit_kind(kind: &ExitKind) -> Result<bool, Error> {
        Ok(*kind == ExitKind::Ok)
    }
}

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
    pending: Option<Kind>,
}

impl Solutions {
    pub fn new(edges: Handle<Edges>, dir: &Path, command_line: String, replay: Vec<OsString>) -> Self {
        let seen_crash = Seen::load(&dir.join(SEEN_CRASHES));
        Solutions { edges, dir: dir.to_path_buf(), command_line, replay, seen_crash, pending: None }
    }
}

/// Where a client keeps the map entries its crashes reached (`Seen`).
pub const SEEN_CRASHES: &str = ".seen-crashes";

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
    OT: MatchName,
    S: HasCorpus<I> + HasSolutions<I> + HasExecutions + HasStartTime + HasMetadata,
{
    fn is_interesting(
        &mut self,
        state: &mut S,
        _mgr: &mut EM,
        _input: &I,
        observers: &OT,
        exit_kind: &ExitKind,
    ) -> Result<bool, Error> {
        self.pending = match exit_kind {
            ExitKind::Crash => self.seen_crash.add(map(observers, &self.edges)?).then_some(Kind::Crash),
            ExitKind::Timeout => {
                state.metadata::<LastRun>().is_ok_and(|last| last.hang.is_some()).then_some(Kind::Hang)
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
        let source = match state.metadata::<Loading>().ok() {
            Some(Loading::Seed(orig) | Loading::Resumed(orig)) => {
                format!("time:0,execs:{},orig:{orig}", state.executions())
            }
            None => origin(state),
        };
        let findings = state.metadata_or_insert_with(Findings::default);
        let (folder, name) = match kind {
            Kind::Crash => {
                let name = format!("id:{:06},sig:{:02},{source}", findings.crashes, signal.unwrap_or(0));
                findings.crashes += 1;
                findings.last_crash = now_secs();
                findings.signals.push(signal.unwrap_or(0));
                ("crashes", name)
            }
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

fn append_line(path: &Path, line: &str) -> Result<(), Error> {
    let mut list = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    std::io::Write::write_all(&mut list, format!("{line}\n").as_bytes())?;
    Ok(())
}

impl Solutions {
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
