//! `fuzzer triage OUT`: from a campaign's crash and hang files to a list of bugs.
//!
//! Every file in `OUT/*/crashes` and `OUT/*/hangs` is replayed `--runs` times under the preload
//! (`run::run`, the run of `fuzzer run`) against the AddressSanitizer build when the campaign had
//! one, else the plain build. There ASan reports every crash, not only memory errors: triage
//! turns its signal handlers on (the campaign leaves them off so that a SEGV stays a SEGV), so a
//! null pointer or an `abort` gets a call stack too. A run's signature is its kind (ASan's name
//! for the error, else the signal; "path traversal", "hang", "left open") and its place: the top
//! frames of the call stack that are in the server's own sources (not libc, the preload or the
//! sanitizer), or for a traversal how the path got out (`..`, percent-encoding, a symlink). Files
//! whose most frequent signature is the same are one group: one bug. A file none of whose runs
//! failed is kept as flaky. The shortest file of each group is cut down (delta debugging, one
//! run per try) while its run keeps the signature.
//!
//! Writes `OUT/triage.json`, `OUT/triage/N.min` (the shortest input of group N) and
//! `OUT/triage/report.md`; the campaign's targets come from `OUT/targets.json`.

use super::symbolize::{self, Frame, Symbolizer};
use crate::preload;
use crate::run::{self, Finished, Limits, Outcome};
use crate::target::Target;
use anyhow::{Context, Result};
use contract::env;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The campaign's output folder.
    pub out: PathBuf,
    /// Replays of each crash and hang file (how often it reproduces).
    #[arg(long, value_name = "N", default_value_t = RUNS)]
    pub runs: usize,
}

/// Replays of each file by default.
pub const RUNS: usize = 5;

pub fn main(args: &Args) -> Result<ExitCode> {
    let groups = triage(&args.out, args.runs)?;
    print!("{}", list(&groups));
    println!("[triage] report: {}", args.out.join("triage/report.md").display());
    Ok(ExitCode::SUCCESS)
}

/// What a campaign fuzzed, kept in `OUT/targets.json` for triage.
#[derive(Serialize, Deserialize)]
pub struct Targets {
    pub plain: Target,
    pub asan: Option<Target>,
    /// The web root given with `--root` (else the built-in one).
    pub root: Option<PathBuf>,
}

impl Targets {
    pub fn save(&self, out: &Path) -> Result<()> {
        let path = out.join("targets.json");
        std::fs::write(&path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The build triage replays against: the ASan one when there is one.
    fn triaged(&self) -> &Target {
        self.asan.as_ref().unwrap_or(&self.plain)
    }

    fn load(out: &Path) -> Result<Self> {
        let path = out.join("targets.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} has no targets.json: triage works on folders written by a campaign of this fuzzer",
                out.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a valid targets.json", path.display()))
    }
}

/// One bug: the files whose runs fail the same way.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Group {
    pub kind: String,
    /// Where: `function (file:line)` of the top frame in the server's sources, or how a traversal
    /// got out.
    pub location: String,
    /// The top frames in the server's sources, innermost first.
    pub frames: Vec<String>,
    /// The library function the innermost frame called when it failed (`strlen`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<String>,
    /// The files, relative to OUT.
    pub files: Vec<String>,
    /// Runs of its files that failed this way, of all runs of its files.
    pub reproduced: usize,
    pub runs: usize,
    /// The shortest input found (`triage/N.min`, relative to OUT).
    pub minimized: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Report {
    groups: Vec<Group>,
}

/// The groups of an earlier triage (`OUT/triage.json`), if there was one.
fn load(out: &Path) -> Option<Vec<Group>> {
    let text = std::fs::read_to_string(out.join("triage.json")).ok()?;
    serde_json::from_str::<Report>(&text).ok().map(|r| r.groups)
}

/// How a run failed: what and where.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Signature {
    kind: String,
    /// Frames in the server's sources, innermost first; for a traversal, how it got out.
    frames: Vec<Frame>,
    /// The function outside the server's sources that its innermost frame was calling when it
    /// failed (`strlen`, `atoi`), if it was.
    callee: Option<String>,
}

impl Frame {
    fn show(&self, base: &Path) -> String {
        if self.line == 0 {
            return self.function.clone();
        }
        let file = Path::new(&self.file);
        let file = file.strip_prefix(base).unwrap_or(file);
        format!("{} ({}:{})", self.function, file.display(), self.line)
    }
}

impl Signature {
    fn new(kind: &str) -> Self {
        Signature { kind: kind.into(), frames: Vec::new(), callee: None }
    }

    /// A crash with only its signal to go by (a build without ASan), which gdb can place.
    fn is_signal(&self) -> bool {
        self.kind.starts_with("SIG") || self.kind.starts_with("signal ")
    }

    fn is_hang(&self) -> bool {
        self.kind == HANG || self.kind == LEFT_OPEN
    }

    /// What groups files: the kind and the functions of the two innermost frames. Not the line:
    /// one unchecked pointer is often dereferenced on several lines of one function. A wild
    /// pointer (SEGV) also by the library function it was passed to: `atoi(NULL)` and
    /// `strlen(NULL)` in one function are two unchecked values. Out-of-bounds accesses are one
    /// kind whatever ASan calls them (`heap-buffer-overflow`, `unknown-crash` for a huge
    /// length): one wrong length overruns first in a `memset` or at an index, as it happens.
    fn key(&self) -> (String, Vec<String>, Option<String>) {
        let wild = self.kind == "SEGV" || self.is_signal();
        let kind = if OUT_OF_BOUNDS.contains(&self.kind.as_str()) { "out-of-bounds" } else { &self.kind };
        let functions = self.frames.iter().take(2).map(|f| f.function.clone()).collect();
        (kind.to_string(), functions, self.callee.clone().filter(|_| wild))
    }
}

/// ASan's names for an access past the end (or before the start) of a block.
const OUT_OF_BOUNDS: [&str; 7] = [
    "heap-buffer-overflow",
    "stack-buffer-overflow",
    "stack-buffer-underflow",
    "global-buffer-overflow",
    "dynamic-stack-buffer-overflow",
    "container-overflow",
    "unknown-crash",
];

/// Frames of the call stack kept per signature.
const FRAMES: usize = 3;

/// Replay, group, minimize, and write the results. Progress goes to stdout.
pub fn triage(out: &Path, runs: usize) -> Result<Vec<Group>> {
    let targets = Targets::load(out)?;
    let target = targets.triaged();
    let dir = out.join("triage");
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    match &targets.root {
        Some(user_root) => crate::tree::copy_tree(user_root, &root, &[])
            .with_context(|| format!("cannot copy the web root {} to {}", user_root.display(), root.display()))?,
        None => crate::assets::write_root(&root)?,
    }
    let replayer = Replayer {
        target,
        root: root.canonicalize()?,
        sources: sources(out, target),
        symbolizer: Symbolizer::default(),
        gdb: crate::stacks::available(),
    };
    let files = findings(out);
    if files.is_empty() {
        write(out, &[], &replayer)?;
        return Ok(Vec::new());
    }
    let runs = runs.max(1);
    println!("[triage] replaying {} file(s) {runs} time(s) each against {}...", files.len(), target.binary.display());
    if !replayer.gdb {
        let what = if targets.asan.is_some() { "hangs are" } else { "hangs and crashes are" };
        println!("[triage] gdb is not installed: {what} grouped without where they happen (apt-get install gdb)");
    }
    let started = Instant::now();
    let verdicts = replayer.replay_all(&files, runs);
    // Group by the most frequent signature of each file.
    let mut groups: BTreeMap<_, (Signature, Vec<(&Finding, usize)>)> = BTreeMap::new();
    for (finding, verdict) in files.iter().zip(&verdicts) {
        let (signature, count) = match most_frequent(verdict) {
            Some((signature, count)) => (signature, count),
            None => (flaky(finding), 0),
        };
        groups.entry(signature.key()).or_insert_with(|| (signature, Vec::new())).1.push((finding, count));
    }
    println!("[triage] {} file(s) replayed in {:.0} s", files.len(), started.elapsed().as_secs_f64());
    let groups: Vec<_> = groups.into_values().collect();
    let started = Instant::now();
    let minimized = replayer.minimize_all(&groups);
    println!("[triage] {} group(s) minimized in {:.0} s", groups.len(), started.elapsed().as_secs_f64());
    let mut result: Vec<(Group, Option<Vec<u8>>)> = groups
        .iter()
        .zip(minimized)
        .map(|((signature, members), min)| {
            let frames: Vec<String> = signature.frames.iter().map(|f| f.show(&replayer.sources)).collect();
            let group = Group {
                kind: signature.kind.clone(),
                location: frames.first().cloned().unwrap_or_default(),
                frames,
                calls: signature.callee.clone(),
                files: members.iter().map(|(f, _)| f.name.clone()).collect(),
                reproduced: members.iter().map(|(_, c)| c).sum(),
                runs: members.len() * runs,
                minimized: None,
            };
            (group, min)
        })
        .collect();
    // The most frequent bugs first; flaky ones last.
    result.sort_by_key(|(g, _)| (g.reproduced == 0, std::cmp::Reverse(g.files.len())));
    std::fs::create_dir_all(&dir)?;
    let mut groups = Vec::new();
    for (n, (mut group, min)) in result.into_iter().enumerate() {
        if let Some(min) = min {
            let name = format!("{}.min", n + 1);
            std::fs::write(dir.join(&name), &min)?;
            group.minimized = Some(format!("triage/{name}"));
        }
        groups.push(group);
    }
    write(out, &groups, &replayer)?;
    Ok(groups)
}

/// The groups of `OUT/triage.json` as [`list`] puts them, if triage has run.
pub fn listed(out: &Path) -> Option<String> {
    load(out).map(|groups| list(&groups))
}

/// `N distinct bugs:` and one line per group, for the summary.
fn list(groups: &[Group]) -> String {
    let bugs = groups.iter().filter(|g| g.reproduced > 0).count();
    let mut t = format!("{bugs} distinct bug{} (fuzzer triage):\n", if bugs == 1 { "" } else { "s" });
    for (n, g) in groups.iter().enumerate() {
        t += &format!(
            "   {}. {}{}{}: {} file{}, reproduced {}/{}\n",
            n + 1,
            g.kind,
            place(&g.location),
            g.calls.as_ref().map_or(String::new(), |f| format!(", calling {f}")),
            g.files.len(),
            if g.files.len() == 1 { "" } else { "s" },
            g.reproduced,
            g.runs
        );
    }
    t
}

/// Where a group's bug is, as it follows its kind: ` in function (file:line)`, or how a traversal
/// got out.
fn place(location: &str) -> String {
    match location {
        "" => String::new(),
        how if how.starts_with("through ") => format!(" {how}"),
        at => format!(" in {at}"),
    }
}

/// A crash or hang file.
struct Finding {
    /// Relative to OUT.
    name: String,
    bytes: Vec<u8>,
    hang: bool,
}

/// Every crash and hang file of every instance folder under OUT (`summary`'s listing).
fn findings(out: &Path) -> Vec<Finding> {
    let mut found = Vec::new();
    let Ok(instances) = std::fs::read_dir(out) else { return found };
    let mut instances: Vec<PathBuf> = instances.flatten().map(|e| e.path()).collect();
    instances.sort();
    for instance in instances {
        for (sub, hang) in [("crashes", false), ("hangs", true)] {
            let dir = instance.join(sub);
            let mut names = super::summary::findings(&dir);
            names.sort();
            for path in names.into_iter().map(|name| dir.join(name)) {
                if let Ok(bytes) = std::fs::read(&path) {
                    let name = path.strip_prefix(out).unwrap_or(&path).display().to_string();
                    found.push(Finding { name, bytes, hang });
                }
            }
        }
    }
    found
}

/// The signature of a file none of whose runs failed.
fn flaky(finding: &Finding) -> Signature {
    let kind = if finding.hang { "flaky hang (did not reproduce)" } else { "flaky crash (did not reproduce)" };
    Signature::new(kind)
}

fn most_frequent(signatures: &[Option<Signature>]) -> Option<(Signature, usize)> {
    let mut counts: BTreeMap<&Signature, usize> = BTreeMap::new();
    for s in signatures.iter().flatten() {
        *counts.entry(s).or_default() += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(s, n)| (s.clone(), n))
}

/// Runs one target the way triage needs.
struct Replayer<'a> {
    target: &'a Target,
    root: PathBuf,
    /// The folder the target was built in: frames in files under it are the server's.
    sources: PathBuf,
    symbolizer: Symbolizer,
    /// gdb is there to place hangs, and crashes of a build without ASan.
    gdb: bool,
}

/// How long a replay may take: a hang file must hang past it, and the campaign's hang timeout
/// is 1 s by default.
const RUN_LIMIT: Duration = Duration::from_secs(2);
/// How long a run that takes a hang's stacks waits first: the verdicts that make a hang are off
/// there, and a server that left our connection open or spins does so long before.
const PLACED_RUN_LIMIT: Duration = Duration::from_millis(500);
/// Runs one minimization may take, at most, and how long.
const MINIMIZE_RUNS: usize = 100;
const MINIMIZE_TIME: Duration = Duration::from_secs(10);

impl Replayer<'_> {
    /// Every file `runs` times; the signature of each run (None: it did not fail).
    /// A hang's place comes from one more run with gdb (`placed`); its other runs only say
    /// whether it hangs.
    fn replay_all(&self, files: &[Finding], runs: usize) -> Vec<Vec<Option<Signature>>> {
        let progress = Progress::new(files.len(), "file(s) replayed");
        on_all_cores(files, |file| {
            let _tick = progress.tick();
            let mut runs: Vec<_> = (0..runs).map(|_| self.signature_of(&file.bytes, false)).collect();
            // A crash without ASan's report: its place from gdb, once.
            if runs.iter().flatten().any(|s| s.frames.is_empty() && s.is_signal()) {
                if let Some(placed) = self.crash_under_gdb(&file.bytes) {
                    for run in runs.iter_mut().flatten().filter(|s| s.kind == placed.kind) {
                        run.frames.clone_from(&placed.frames);
                        run.callee.clone_from(&placed.callee);
                    }
                }
            }
            if runs.iter().flatten().any(Signature::is_hang) {
                if let Some(placed) = self.signature_of(&file.bytes, true).filter(Signature::is_hang) {
                    for run in runs.iter_mut().flatten().filter(|s| s.is_hang()) {
                        run.frames.clone_from(&placed.frames);
                        run.callee.clone_from(&placed.callee);
                    }
                }
            }
            runs
        })
    }

    /// The shortest input of each group that fails (None for a flaky group).
    fn minimize_all(&self, groups: &[(Signature, Vec<(&Finding, usize)>)]) -> Vec<Option<Vec<u8>>> {
        let progress = Progress::new(groups.len(), "group(s) minimized");
        on_all_cores(groups, |(signature, members)| {
            let _tick = progress.tick();
            let shortest = members.iter().map(|(f, _)| f).min_by_key(|f| f.bytes.len())?;
            let failed = members.iter().any(|(_, count)| *count > 0);
            failed.then(|| self.minimize(&shortest.bytes, signature))
        })
    }

    /// One run of `input`: how it failed, if it did (a run that could not be made counts as not
    /// failing). `placed`: a hang gets the place where the server waits or spins, from gdb.
    fn signature_of(&self, input: &[u8], placed: bool) -> Option<Signature> {
        let placed = placed && self.gdb;
        let finished = self.run(input, placed).ok()?;
        let signature = signature(&finished, input, &self.sources, &self.symbolizer)?;
        if placed && signature.is_hang() {
            let (frames, callee) = hang_place(&finished.stacks, &self.sources);
            return Some(Signature { frames, callee, ..signature });
        }
        Some(signature)
    }

    /// `placed`: the preload's hang verdicts off (the server is left waiting or spinning, for
    /// gdb to see where), and the stacks taken at a shorter limit.
    fn run(&self, input: &[u8], placed: bool) -> Result<Finished> {
        self.with_setup(placed, |command, envs, cwd, limits| run::run(command, envs, cwd, Some(input), limits, false))
    }

    /// A run of `input` under gdb, for a build without ASan (whose report has the stack): the
    /// signal and the place of its crash, if it crashed where gdb could see.
    fn crash_under_gdb(&self, input: &[u8]) -> Option<Signature> {
        if !self.gdb {
            return None;
        }
        let backtrace = self
            .with_setup(false, |command, envs, cwd, limits| {
                crate::gdb::crash_backtrace(command, envs, cwd, input, limits)
            })
            .ok()?;
        // "Thread 2 "server" received signal SIGSEGV, Segmentation fault."
        let signal = backtrace.split("received signal ").nth(1)?.split([',', ' ', '.']).next()?.to_string();
        let (frames, callee) = crash_place(&backtrace, &self.sources)?;
        Some(Signature { kind: signal, frames, callee })
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
        // symbolized (see `symbolize`), no allocation stacks: only the first stack is read.
        let asan = format!(
            "{}:handle_segv=1:handle_sigbus=1:handle_sigfpe=1:handle_sigill=1:handle_abort=1:symbolize=0:\
             malloc_context_size=0:max_allocation_size_mb={}",
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
        let limits = Limits { listen: Duration::from_secs(10), run, mem_mb: target.mem_limit_mb, stacks: placed };
        go(&command, &envs, target.cwd.as_deref(), limits)
    }

    /// The shortest input found that still fails with `signature`: delta debugging, one run per
    /// try, removing whole lines first (the requests before the failing one, then single lines:
    /// headers), then chunks of halving size.
    fn minimize(&self, input: &[u8], signature: &Signature) -> Vec<u8> {
        let started = Instant::now();
        // A hang takes the whole run limit per try; a crash gdb placed is tried under gdb.
        let hang = signature.is_hang();
        let under_gdb = signature.is_signal() && !signature.frames.is_empty();
        let budget = if hang { MINIMIZE_RUNS / 20 } else { MINIMIZE_RUNS };
        let tries = std::cell::Cell::new(0);
        let more = || tries.get() < budget && started.elapsed() < MINIMIZE_TIME;
        let fails = |candidate: &[u8]| {
            tries.set(tries.get() + 1);
            // Under gdb only once a plain run crashed with the signal (a gdb run costs ~0.3 s).
            let failed = if under_gdb {
                self.signature_of(candidate, false)
                    .filter(|s| s.kind == signature.kind)
                    .and_then(|_| self.crash_under_gdb(candidate))
            } else {
                self.signature_of(candidate, hang)
            };
            failed.is_some_and(|s| s.key() == signature.key())
        };
        let mut best = input.to_vec();
        // The requests before the one that fails, all at once: the longest prefix of whole
        // lines without which it still fails (one line at a time, a request would not parse).
        let ends: Vec<usize> = best.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1).collect();
        for &end in ends.iter().rev().filter(|&&end| end < best.len()) {
            if !more() {
                return best;
            }
            if fails(&best[end..]) {
                best.drain(..end);
                break;
            }
        }
        let mut at = 0;
        while let Some(end) = best[at..].iter().position(|&b| b == b'\n').map(|i| at + i + 1) {
            if !more() {
                return best;
            }
            let candidate = [&best[..at], &best[end..]].concat();
            if fails(&candidate) {
                best = candidate;
            } else {
                at = end;
            }
        }
        let mut chunk = best.len().div_ceil(2).max(1);
        while more() {
            let mut at = 0;
            let mut removed = false;
            while at < best.len() && more() {
                let candidate = [&best[..at], &best[(at + chunk).min(best.len())..]].concat();
                if fails(&candidate) {
                    best = candidate;
                    removed = true;
                } else {
                    at += chunk;
                }
            }
            if !removed {
                if chunk == 1 {
                    break;
                }
                chunk /= 2;
            }
        }
        best
    }
}

/// A line every few seconds on long work: how many of how many are done.
struct Progress {
    total: usize,
    what: &'static str,
    done: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<Instant>,
}

/// Counts one item as done when dropped.
struct Tick<'a>(&'a Progress);

impl Progress {
    fn new(total: usize, what: &'static str) -> Self {
        Progress { total, what, done: 0.into(), last: std::sync::Mutex::new(Instant::now()) }
    }

    fn tick(&self) -> Tick<'_> {
        Tick(self)
    }
}

impl Drop for Tick<'_> {
    fn drop(&mut self) {
        let p = self.0;
        let done = p.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut last = p.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= PROGRESS_EVERY && done < p.total {
            *last = Instant::now();
            println!("[triage] {done}/{} {}", p.total, p.what);
        }
    }
}

const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// `work` on each item, on as many threads as there are cores; the results in order.
fn on_all_cores<T: Sync, R: Send + Default + Clone>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break mine };
                        mine.push((i, work(item)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    let mut results = vec![R::default(); items.len()];
    for (i, r) in done {
        results[i] = r;
    }
    results
}

/// How a finished run failed, if it did; frames are the server's when in a file under `sources`.
fn signature(finished: &Finished, input: &[u8], sources: &Path, symbolizer: &Symbolizer) -> Option<Signature> {
    let plain = |kind: &str| Some(Signature::new(kind));
    match &finished.outcome {
        Outcome::Ok | Outcome::Exited(_) => None,
        Outcome::Hang => plain(HANG),
        Outcome::LeftOpen => plain(LEFT_OPEN),
        Outcome::Traversal(_) => {
            let how = traversal_form(input);
            Some(Signature {
                frames: vec![Frame { function: how.into(), file: String::new(), line: 0 }],
                ..Signature::new("path traversal")
            })
        }
        Outcome::Crash(sig) => {
            let name = preload::short_signal_name(*sig).map_or_else(|| format!("signal {sig}"), str::to_string);
            asan_report(&finished.stderr, sources, symbolizer).or_else(|| plain(&name))
        }
    }
}

const HANG: &str = "hang";
const LEFT_OPEN: &str = "left open";

/// Where a crash happened, from gdb's backtrace of the crashing thread (`bt` after the signal):
/// the frames in the server's sources, and the library function it was in.
fn crash_place(backtrace: &str, sources: &Path) -> Option<(Vec<Frame>, Option<String>)> {
    let thread = crate::stacks::parse_backtrace(backtrace).into_iter().next()?;
    let (frames, callee) = server_frames(thread, sources);
    (!frames.is_empty()).then_some((frames, callee))
}

/// The frames of one gdb stack in the server's sources (innermost first, at most [`FRAMES`]),
/// and the library function the innermost of them called.
fn server_frames(thread: Vec<crate::stacks::GdbFrame>, sources: &Path) -> (Vec<Frame>, Option<String>) {
    let stack: Vec<Frame> = thread
        .into_iter()
        .map(|f| Frame { function: f.function, file: f.file.unwrap_or_default(), line: f.line.unwrap_or(0) })
        .collect();
    in_server(&stack, sources)
}

/// Where a hung server waits or spins, from gdb's stacks of its processes: the frames in the
/// server's sources of the thread most likely ours (one reading or running its own code
/// before one parked in `accept`, `epoll_wait` or a condition variable: an idle thread of a
/// pool or the acceptor), and the library function it is in.
fn hang_place(stacks: &str, sources: &Path) -> (Vec<Frame>, Option<String>) {
    const IDLE: [&str; 12] = [
        "accept",
        "accept4",
        "epoll_wait",
        "epoll_pwait",
        "pthread_cond_wait",
        "pthread_cond_timedwait",
        "pause",
        "sigsuspend",
        "sigwait",
        "nanosleep",
        "clock_nanosleep",
        "futex_wait",
    ];
    let threads = crate::stacks::parse_backtrace(stacks).into_iter().filter_map(|thread| {
        let (frames, callee) = server_frames(thread, sources);
        let idle = callee.as_deref().is_some_and(|c| IDLE.iter().any(|i| c.contains(i)));
        (!frames.is_empty()).then_some((idle, frames, callee))
    });
    threads.min_by_key(|(idle, ..)| *idle).map_or((Vec::new(), None), |(_, frames, callee)| (frames, callee))
}

/// How a path-traversal request got out of the web root, from the request's bytes: a literal
/// `..` first, then encoded dots or slashes; in the path of the first request line's target if
/// it shows either (a query or a header may hold dots of their own), else anywhere (a later
/// request of a pipeline).
fn traversal_form(input: &[u8]) -> &'static str {
    let line = input.split(|&b| b == b'\n').next().unwrap_or(input);
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or(line);
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    form(path).or_else(|| form(input)).unwrap_or("through a symlink")
}

fn form(bytes: &[u8]) -> Option<&'static str> {
    let lower = bytes.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if has(b"/..") || has(b"../") {
        Some("through `..`")
    } else if has(b"%2e") || has(b"%2f") || has(b"%5c") {
        Some("through percent-encoded dots or slashes")
    } else {
        None
    }
}

/// The error kind, the frames in the server's own sources (under `sources`) and the function
/// they called of an AddressSanitizer report, symbolized or not.
fn asan_report(stderr: &[u8], sources: &Path, symbolizer: &Symbolizer) -> Option<Signature> {
    let text = String::from_utf8_lossy(stderr);
    let start = text.find("ERROR: AddressSanitizer: ")? + "ERROR: AddressSanitizer: ".len();
    let mut words = text[start..].split_whitespace();
    let first = words.next()?.trim_end_matches(':');
    // "attempting double-free on 0x...", "attempting free on address which was not malloc()-ed"
    let kind = if first == "attempting" { words.next()?.trim_end_matches(':') } else { first };
    let mut stack = Vec::new();
    let mut in_stack = false;
    for line in text[start..].lines().map(str::trim) {
        if line.starts_with('#') {
            in_stack = true;
            match symbolize::module_offset(line) {
                Some((module, offset)) => stack.extend(symbolizer.frames(module, offset)),
                None => stack.extend(parse_frame(line)),
            }
        } else if in_stack {
            break; // the first stack only: the others say where the memory was allocated or freed
        }
    }
    let (frames, callee) = in_server(&stack, sources);
    Some(Signature { kind: kind.to_string(), frames, callee })
}

/// The frames of a stack (innermost first) in the server's sources, at most [`FRAMES`], and
/// the library function the innermost of them called, if it was in one.
fn in_server(stack: &[Frame], sources: &Path) -> (Vec<Frame>, Option<String>) {
    let ours = |f: &Frame| is_server_source(&f.file, sources);
    let frames: Vec<Frame> = stack.iter().filter(|f| ours(f)).take(FRAMES).cloned().collect();
    let callee = stack.iter().take_while(|f| !ours(f)).last().map(|f| library_function(&f.function));
    let callee = callee.filter(|_| !frames.is_empty());
    (frames, callee)
}

/// A library function as the server called it: `strlen` for ASan's `__interceptor_strlen`,
/// `memcpy` for `__asan_memcpy`.
fn library_function(name: &str) -> String {
    let mut name = name;
    // `__GI___libc_read`, `__interceptor_strlen`, `__asan_memcpy`
    while let Some(rest) = ["_", "GI_", "libc_", "interceptor_", "asan_"].iter().find_map(|p| name.strip_prefix(p)) {
        name = rest;
    }
    name.to_string()
}

/// `#3 0x55d0c1 in parse_range /src/http.c:120:9` (a symbolized report).
fn parse_frame(line: &str) -> Option<Frame> {
    let rest = &line[line.find(" in ")? + 4..];
    let (function, location) = rest.rsplit_once(' ')?;
    let mut parts = location.split(':');
    let file = parts.next()?.to_string();
    let line = parts.next()?.parse().ok()?;
    Some(Frame { function: function.trim().to_string(), file, line })
}

/// A frame in the server's code: a C or C++ file that is there, in the folder it was built in
/// or elsewhere outside the system's (libc's sources are named without being there).
fn is_server_source(file: &str, sources: &Path) -> bool {
    let source = [".c", ".h", ".cc", ".cpp", ".cxx", ".hpp"].iter().any(|e| file.ends_with(e));
    let path = sources.join(file);
    source && !file.contains("sanitizer") && path.is_file() && (path.starts_with(sources) || !path.starts_with("/usr/"))
}

/// The folder the target was built in (its working copy), else OUT/build.
fn sources(out: &Path, target: &Target) -> PathBuf {
    let build = target.cwd.clone().unwrap_or_else(|| out.join("build"));
    build.canonicalize().unwrap_or(build)
}

fn write(out: &Path, groups: &[Group], replayer: &Replayer) -> Result<()> {
    let json = out.join("triage.json");
    let report = Report { groups: groups.to_vec() };
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    let dir = out.join("triage");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("report.md"), markdown(out, groups, replayer)).context("cannot write triage/report.md")
}

/// `report.md`: one section per bug, with the source around it, its shortest input and how to
/// replay it.
fn markdown(out: &Path, groups: &[Group], replayer: &Replayer) -> String {
    let mut t = String::from("# Triage\n\n");
    if groups.is_empty() {
        t += "No crash or hang files.\n";
        return t;
    }
    t += &list(groups).replace("   ", "");
    for (n, g) in groups.iter().enumerate() {
        let calls = g.calls.as_ref().map_or(String::new(), |f| format!(", calling `{f}`"));
        t += &format!("\n## {}. {}{}{calls}\n\n", n + 1, g.kind, place(&g.location));
        t += &format!(
            "Reproduced in {} of {} runs ({} file{}, e.g. `{}`).\n",
            g.reproduced,
            g.runs,
            g.files.len(),
            if g.files.len() == 1 { "" } else { "s" },
            g.files[0]
        );
        if g.frames.len() > 1 {
            t += &format!("\nCall stack in your code: {}\n", g.frames.join(" <- "));
        }
        if let Some(excerpt) = excerpt(&replayer.sources, &g.location) {
            t += &format!("\n```c\n{excerpt}```\n");
        }
        if let Some(min) = &g.minimized {
            let bytes = std::fs::read(out.join(min)).unwrap_or_default();
            t +=
                &format!("\nShortest input found (`{min}`, {} bytes):\n\n```\n{}\n```\n", bytes.len(), escaped(&bytes));
            if !bytes.iter().all(|&b| printable(b)) {
                t += &format!("\n```\n{}```\n", crate::hex::dump(&bytes, false));
            }
            t += "\nReplay it:\n\n```\n";
            let target = replayer.target;
            let root = replayer.root.display().to_string();
            let args = target.args.replace("{port}", "8080").replace("{root}", &root);
            // With --root, a path traversal is seen as one.
            let oracle = if target.serves_root() { format!("--root {root} ") } else { String::new() };
            let input = out.join(min);
            let (binary, input) = (target.binary.display(), input.canonicalize().unwrap_or(input));
            let input = input.display();
            t += &format!("fuzzer run {oracle}-- {binary} {args} < {input}\n");
            t += &format!("fuzzer run --gdb {oracle}-- {binary} {args} < {input}    # stops where it fails\n");
            t += &format!("fuzzer send 127.0.0.1 PORT < {input}    # against your server, started normally\n```\n");
        }
    }
    t
}

/// A byte a request shows as text: printable ASCII, tab and line ends.
fn printable(b: u8) -> bool {
    matches!(b, 0x20..0x7f | b'\t' | b'\r' | b'\n')
}

/// The request as text, with the bytes that are not [`printable`] escaped.
fn escaped(bytes: &[u8]) -> String {
    let mut t = String::new();
    for &b in bytes {
        match b {
            b'\r' => t += "\\r",
            b'\n' => t += "\\n\n",
            b'\\' => t += "\\\\",
            _ if printable(b) => t.push(b as char),
            _ => t += &format!("\\x{b:02x}"),
        }
    }
    t
}

/// Three lines of source on either side of `function (file:line)` (a file under `sources`, or
/// absolute), the line marked.
fn excerpt(sources: &Path, location: &str) -> Option<String> {
    let inner = location.rsplit_once(" (")?.1.strip_suffix(')')?;
    let (file, line) = inner.rsplit_once(':')?;
    let line: usize = line.parse().ok()?;
    let text = std::fs::read_to_string(sources.join(file)).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let from = line.saturating_sub(4);
    let to = (line + 3).min(lines.len());
    if from >= to {
        return None;
    }
    Some(
        (from..to)
            .map(|i| format!("{} {:>5} | {}\n", if i + 1 == line { ">" } else { " " }, i + 1, lines[i]))
            .collect(),
    )
}

/// A triage that cannot start says why; the campaign's own results stay as they are.
pub fn after_campaign(out: &Path, runs: usize) {
    match triage(out, runs) {
        Ok(groups) if !groups.is_empty() => println!("[triage] report: {}", out.join("triage/report.md").display()),
        Ok(_) => {}
        Err(e) => println!("[triage] skipped: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "=================================================================
==12==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000011 at pc 0x1 bp 0x2 sp 0x3
READ of size 1 at 0x602000000011 thread T1
    #0 0x7f1 in __interceptor_strlen ../../../../src/libsanitizer/sanitizer_common/sanitizer_common_interceptors.inc:387
    #1 0x55d in parse_range /tmp/out/build/http.c:120:9
    #2 0x55e in handle /tmp/out/build/http.c:300
    #3 0x55f in worker /tmp/out/build/server.c:40
    #4 0x560 in serve /tmp/out/build/server.c:60
    #5 0x7f2 in start_thread (/lib/x86_64-linux-gnu/libc.so.6+0x8e)

0x602000000011 is located 0 bytes to the right of 1-byte region
allocated by thread T1 here:
    #0 0x7f3 in malloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:69
    #1 0x561 in read_request /tmp/out/build/http.c:50
";

    #[test]
    fn an_asan_report_gives_the_kind_and_the_frames_in_the_servers_sources() {
        let sources = std::env::temp_dir().join(format!("triage-test-{}", std::process::id()));
        std::fs::create_dir_all(&sources).unwrap();
        for f in ["http.c", "server.c", "api.c"] {
            std::fs::write(sources.join(f), "").unwrap();
        }
        let report = REPORT.replace("/tmp/out/build", &sources.display().to_string());
        let symbolizer = Symbolizer::default();
        let s = asan_report(report.as_bytes(), &sources, &symbolizer).unwrap();
        assert_eq!((s.kind.as_str(), s.callee.as_deref()), ("heap-buffer-overflow", Some("strlen")));
        let shown: Vec<String> = s.frames.iter().map(|f| f.show(&sources)).collect();
        assert_eq!(shown, ["parse_range (http.c:120)", "handle (http.c:300)", "worker (server.c:40)"]);
        let double_free = format!(
            "==1==ERROR: AddressSanitizer: attempting double-free on 0x6 in thread T0:\n    #0 0x1 in free x.cpp:1\n    #1 0x2 in strtol_l stdlib/strtol_l.c:291\n    #2 0x2 in logout {}/api.c:7\n",
            sources.display()
        );
        let s = asan_report(double_free.as_bytes(), &sources, &symbolizer).unwrap();
        assert_eq!((s.kind.as_str(), s.frames[0].function.as_str()), ("double-free", "logout"));
        assert!(asan_report(b"Segmentation fault", &sources, &symbolizer).is_none());
        std::fs::remove_dir_all(&sources).unwrap();
    }

    #[test]
    fn traversals_are_told_apart_by_how_the_path_got_out() {
        assert_eq!(traversal_form(b"GET /../../etc/passwd HTTP/1.0\r\n\r\n"), "through `..`");
        assert_eq!(traversal_form(b"GET /%2E%2e/secret HTTP/1.0\r\n\r\n"), "through percent-encoded dots or slashes");
        assert_eq!(traversal_form(b"GET /link/passwd HTTP/1.0\r\n\r\n"), "through a symlink");
        assert_eq!(traversal_form(b"GET /a%20b/../../x HTTP/1.0\r\n\r\n"), "through `..`");
        let header = b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.0\r\nReferer: ../x\r\n\r\n";
        assert_eq!(traversal_form(header), "through percent-encoded dots or slashes");
        assert_eq!(traversal_form(b"GET / HTTP/1.1\r\n\r\nGET /../x HTTP/1.0\r\n\r\n"), "through `..`");
        let query = b"GET /%2e%2e/etc/passwd?/../ HTTP/1.0\r\n\r\n";
        assert_eq!(traversal_form(query), "through percent-encoded dots or slashes");
    }

    #[test]
    fn escaped_inputs_keep_lines_and_show_other_bytes() {
        assert_eq!(escaped(b"GET /\x00\xff HTTP/1.0\r\n"), "GET /\\x00\\xff HTTP/1.0\\r\\n\n");
    }
}
