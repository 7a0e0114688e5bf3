//! `fuzzer triage OUT`: from a campaign's crash and hang files to a list of bugs.
//!
//! Every file in `OUT/*/crashes` and `OUT/*/hangs` is replayed `--runs` times under the preload
//! (`runner::run`, the run of `fuzzer run`) against the AddressSanitizer build when the campaign had
//! one, else the plain build. There ASan reports every crash, not only memory errors: triage
//! turns its signal handlers on (the campaign leaves them off so that a SEGV stays a SEGV), so a
//! null pointer or an `abort` gets a call stack too. A run's signature is its kind (ASan's name
//! for the error, else the signal; "path traversal", "hang", "left open") and its place: the top
//! frames of the call stack that are in the server's own sources (not libc, the preload or the
//! sanitizer), or for a traversal how the path got out (`..`, percent-encoding, a symlink). Files
//! whose most frequent signature is the same are one group: one bug. A file none of whose runs
//! failed is kept as flaky. After a campaign triage is bounded in time, in proportion to the
//! campaign (`Replayer::replay_all`): the files it has no time for are a group of their own. The shortest file of each group is cut down (delta debugging, one
//! run per try) while its run keeps the signature.
//!
//! Writes `OUT/triage.json`, `OUT/triage/N.min` (the shortest input of group N) and
//! `OUT/triage/report.md`; the campaign's targets come from `OUT/targets.json`.
//!
//! This file is the pipeline; each job is a file of its own: `replay` (a run of a file with
//! triage's limits), `signature` (what a run left, read into how it failed), `minimize` (delta
//! debugging), `report` (`triage.json` and `report.md`) and `pool` (the work on every core).

mod minimize;
mod pool;
mod replay;
mod report;
mod signature;

use super::findings::{self, Finding};
use super::symbolize::Symbolizer;
use crate::bugs::Group;
use crate::runner::target::Target;
use anyhow::{Context, Result};
use replay::Replayer;
use report::Replayed;
use serde::{Deserialize, Serialize};
use signature::Signature;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Replays of each file by default.
pub const RUNS: usize = 5;

/// What a campaign fuzzed, kept in `OUT/targets.json` for triage.
#[derive(Serialize, Deserialize)]
pub struct Targets {
    pub plain: Target,
    pub asan: Option<Target>,
    /// The web root given with `--root` (else the built-in one).
    pub root: Option<PathBuf>,
    /// The start-up check moved the server to the host's network: triage replays it there too.
    #[serde(default)]
    pub host_network: bool,
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

/// The files of one group, each with how many of its runs failed the group's way, of how many.
type Members<'a> = Vec<(&'a Finding, usize, usize)>;

/// Replay, group, minimize, and write the results. Progress goes to stdout. With `time`, in
/// proportion: at most that long, every file at least once while it lasts (`Replayer::replay_all`).
pub fn triage(out: &Path, runs: usize, time: Option<Duration>) -> Result<Vec<Group>> {
    let targets = Targets::load(out)?;
    if targets.host_network {
        crate::runner::preload::use_host_network();
    }
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
        gdb: crate::gdb::stacks::available(),
        until: time.map(|t| Instant::now() + t),
    };
    let replayed = Replayed { target, root: &replayer.root, sources: &replayer.sources };
    let files = findings::read_all(out);
    if files.is_empty() {
        report::write(out, &[], &replayed)?;
        return Ok(Vec::new());
    }
    let runs = runs.max(1);
    let how = match time {
        Some(t) => format!(
            "for at most {} s: each once, then up to {runs} times where it tells how a bug reproduces",
            t.as_secs()
        ),
        None => format!("{runs} time(s) each"),
    };
    println!("[triage] replaying {} file(s) against {}, {how}...", files.len(), target.binary.display());
    if !replayer.gdb {
        let what = if targets.asan.is_some() { "hangs are" } else { "hangs and crashes are" };
        println!("[triage] gdb is not installed: {what} grouped without where they happen (apt-get install gdb)");
    }
    let started = Instant::now();
    let verdicts = replayer.replay_all(&files, runs);
    let groups = by_signature(&files, &verdicts);
    let done = verdicts.iter().filter(|v| !v.is_empty()).count();
    println!("[triage] {done} file(s) replayed in {:.0} s", started.elapsed().as_secs_f64());
    if done < files.len() {
        println!(
            "[triage] time ran out before {} file(s) were replayed: fuzzer triage {} replays them all",
            files.len() - done,
            out.display()
        );
    }
    let started = Instant::now();
    let minimized = replayer.minimize_all(&groups);
    println!("[triage] {} group(s) minimized in {:.0} s", groups.len(), started.elapsed().as_secs_f64());
    let result = groups
        .iter()
        .zip(minimized)
        .map(|((signature, members), min)| (group(signature, members, &replayer.sources), min))
        .collect();
    let groups = numbered(&dir, result)?;
    report::write(out, &groups, &replayed)?;
    Ok(groups)
}

/// The files grouped by the most frequent signature of their runs (a file none of whose runs
/// failed by [`flaky`]), in the order of the signatures' keys.
fn by_signature<'a>(files: &'a [Finding], verdicts: &[Vec<Option<Signature>>]) -> Vec<(Signature, Members<'a>)> {
    let mut groups: BTreeMap<_, (Signature, Members)> = BTreeMap::new();
    for (finding, verdict) in files.iter().zip(verdicts) {
        let (signature, count) = match most_frequent(verdict) {
            Some((signature, count)) => (signature, count),
            None if verdict.is_empty() => (Signature::new(NOT_REPLAYED), 0),
            None => (flaky(finding), 0),
        };
        let members = &mut groups.entry(signature.key()).or_insert_with(|| (signature, Vec::new())).1;
        members.push((finding, count, verdict.len()));
    }
    groups.into_values().collect()
}

/// A group as `triage.json` keeps it (not minimized yet); its frames shown relative to
/// `sources`.
fn group(signature: &Signature, members: &Members, sources: &Path) -> Group {
    let frames: Vec<String> = signature.frames.iter().map(|f| f.show(sources)).collect();
    Group {
        kind: signature.kind.clone(),
        location: frames.first().cloned().unwrap_or_default(),
        frames,
        calls: signature.callee.clone(),
        files: members.iter().map(|(f, _, _)| f.name.clone()).collect(),
        reproduced: members.iter().map(|(_, c, _)| c).sum(),
        runs: members.iter().map(|(_, _, n)| n).sum(),
        minimized: None,
    }
}

/// The groups in the order of the report, the most frequent bugs first and flaky ones last,
/// each shortest input saved as `dir/N.min` after its place.
fn numbered(dir: &Path, mut result: Vec<(Group, Option<Vec<u8>>)>) -> Result<Vec<Group>> {
    result.sort_by_key(|(g, _)| (g.reproduced == 0, std::cmp::Reverse(g.files.len())));
    std::fs::create_dir_all(dir)?;
    let mut groups = Vec::new();
    for (n, (mut group, min)) in result.into_iter().enumerate() {
        if let Some(min) = min {
            let name = format!("{}.min", n + 1);
            std::fs::write(dir.join(&name), &min)?;
            group.minimized = Some(format!("triage/{name}"));
        }
        groups.push(group);
    }
    Ok(groups)
}

/// The kind of the group of files triage had no time left to replay.
const NOT_REPLAYED: &str = "not replayed in triage's time (fuzzer triage OUT replays every file)";

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

/// The folder the target was built in (its working copy), else OUT/build.
fn sources(out: &Path, target: &Target) -> PathBuf {
    let build = target.cwd.clone().unwrap_or_else(|| out.join("build"));
    build.canonicalize().unwrap_or(build)
}

/// A triage that cannot start says why; the campaign's own results stay as they are.
pub fn after_campaign(out: &Path, runs: usize, campaign: Duration) {
    match triage(out, runs, Some(time_for(campaign))) {
        Ok(groups) if !groups.is_empty() => println!("[triage] report: {}", out.join("triage/report.md").display()),
        Ok(_) => {}
        Err(e) => println!("[triage] skipped: {e:#}"),
    }
}

/// Triage's time after a campaign: a fifth of the campaign's, at least a minute.
fn time_for(campaign: Duration) -> Duration {
    (campaign / 5).max(Duration::from_secs(60))
}
