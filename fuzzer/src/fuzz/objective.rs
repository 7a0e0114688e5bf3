//! The objective: which crashes and hangs are saved (AFL++'s novelty rule) and under which
//! AFL++ names, in `crashes/` and `hangs/` with their lists (`hangs.tsv`, `traversals.tsv`).

use super::findings::{now_secs, Findings, LastRun, Loading, HANGS, TRAVERSALS};
use super::names::{map, origin};
use super::seen::Seen;
use super::Edges;
use libafl::corpus::Testcase;
use libafl::executors::ExitKind;
use libafl::feedbacks::{Feedback, StateInitializer};
use libafl::state::{HasCorpus, HasExecutions, HasSolutions, HasStartTime};
use libafl::{Error, HasMetadata};
use libafl_bolts::tuples::{Handle, MatchName};
use libafl_bolts::Named;
use std::borrow::Cow;
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
    pending: Option<Kind>,
}

impl Solutions {
    pub fn new(edges: Handle<Edges>, dir: &Path, command_line: String, replay: Vec<OsString>) -> Self {
        let seen_crash = Seen::load(&dir.join(SEEN_CRASHES));
        Solutions { edges, dir: dir.to_path_buf(), command_line, replay, seen_crash, pending: None }
    }
}

/// Where an instance keeps the map entries its crashes reached (`Seen`).
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
