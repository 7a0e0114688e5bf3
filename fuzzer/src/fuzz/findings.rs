//! What one instance has found so far, kept in the fuzzer state (so it survives restarts) and
//! read by the stats writer and the status line.

use libafl_bolts::SerdeAny;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize, SerdeAny)]
pub struct Findings {
    /// Files in `crashes/` and `hangs/` (also those of a resumed run).
    pub crashes: u64,
    pub hangs: u64,
    /// Seconds since the epoch of the last crash / hang / new queue entry (0 = never).
    pub last_crash: u64,
    pub last_hang: u64,
    pub last_find: u64,
    /// Executions at the last crash.
    pub execs_at_crash: u64,
    /// Queue entries loaded from seeds (or from the queue of a resumed run).
    pub seeds: u64,
    /// Map entries covered by the queue.
    pub edges: u64,
    /// The signal of every crash saved, for the summary line counts.
    pub signals: Vec<i32>,
    /// Leaks saved (also counted in `crashes`), by kind: descriptor, memory.
    #[serde(default)]
    pub leaks: [u64; 2],
}

/// What produced the inputs being evaluated now (`op:` in AFL file names): the stage, and the
/// named mutators that changed this round's input (`names::note_op`).
#[derive(Debug, Clone, Serialize, Deserialize, SerdeAny)]
pub struct CurrentOp {
    pub stage: String,
    pub mutators: Vec<String>,
}

impl CurrentOp {
    pub fn new(stage: &str) -> Self {
        CurrentOp { stage: stage.to_string(), mutators: Vec::new() }
    }

    /// `STAGE` or `STAGE+MUTATOR+...` (each mutator once, in the order they applied).
    pub fn name(&self) -> String {
        std::iter::once(&self.stage).chain(&self.mutators).map(String::as_str).collect::<Vec<_>>().join("+")
    }
}

/// The original file name of the seed being loaded now (`orig:` in AFL file names), or the
/// full name of a queue entry being reloaded by `--resume`.
#[derive(Debug, Clone, Serialize, Deserialize, SerdeAny)]
pub enum Loading {
    Seed(String),
    Resumed(String),
}

/// The outcome of the last run, for naming crash files (`sig:`) and saving hangs.
#[derive(Debug, Default, Clone, Serialize, Deserialize, SerdeAny)]
pub struct LastRun {
    pub signal: Option<i32>,
    /// A path traversal: the path as the server opened it, a tab, where it resolves.
    pub traversal: Option<String>,
    /// A leak the preload found after the test case (the run itself counts as a normal end).
    pub leak: Option<Leak>,
    /// A hang to save (new, and confirmed by a patient re-run): how the first run ended.
    pub hang: Option<Wait>,
}

/// A leak the preload found after a test case the server served (`descriptor_leaks`,
/// `memory_leaks`): a finding, saved in `crashes/` (`objective`), that need not keep the input
/// out of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leak {
    pub kind: LeakKind,
    /// What leaked (descriptor kinds, `; ` between them), or how much the heap grew.
    pub detail: String,
}

impl Leak {
    /// What tells leaks apart when their files are counted (`objective::LEAK_FILES`): the
    /// descriptors' kinds; memory leaks are one kind (where they were allocated takes triage's
    /// symbolizing).
    pub fn key(&self) -> String {
        match self.kind {
            LeakKind::Descriptor => format!("descriptor\t{}", self.detail),
            LeakKind::Memory => "memory".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeakKind {
    Descriptor,
    Memory,
}

impl LeakKind {
    /// The word in `leaks.tsv`.
    pub fn name(self) -> &'static str {
        match self {
            LeakKind::Descriptor => "descriptor",
            LeakKind::Memory => "memory",
        }
    }

    pub fn from_name(name: &str) -> Option<LeakKind> {
        [LeakKind::Descriptor, LeakKind::Memory].into_iter().find(|k| k.name() == name)
    }

    /// Its place in `Findings::leaks`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a run that did not end by itself was ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wait {
    /// The timeout fired.
    Timeout,
    /// The server kept reading end-of-file without closing (the preload's EOF-spin status).
    EofSpin,
    /// A server thread ran without a blocking call, a read or write, a page fault or new
    /// coverage for the spin bound (the preload's spin verdict), twice.
    Spin,
    /// Every server thread waited for something that cannot come, with the connection still
    /// open (the preload's idle verdict): the server left the connection open.
    Idle,
    /// The same, and nothing could ever wake the server (no timeout, no timer, no child).
    Stuck,
    /// One connection stalled mid-request, another's request left unread, the server asleep
    /// (the preload's blocked-client verdict): one slow client blocks the others.
    Blocked,
}

impl Wait {
    /// The word in `hangs.tsv`.
    pub fn name(self) -> &'static str {
        match self {
            Wait::Timeout => "timeout",
            Wait::EofSpin => "eof-spin",
            Wait::Spin => "spin",
            Wait::Idle | Wait::Stuck => "left-open",
            Wait::Blocked => "blocked-client",
        }
    }
}

/// The list of hangs in an instance folder and how each began: `HANG_FILE_NAME\tWAIT` lines.
pub const HANGS: &str = "hangs.tsv";

/// The list of path-traversal crashes in an instance folder: `CRASH_FILE_NAME\tPATH\tRESOLVED` lines.
pub const TRAVERSALS: &str = "traversals.tsv";

/// The list of leaks in an instance folder's `crashes/`: `CRASH_FILE_NAME\tKIND\tDETAIL` lines
/// (`LeakKind::name`, `Leak::detail`).
pub const LEAKS: &str = "leaks.tsv";

/// The leaks listed in an instance folder (`leaks.tsv`), by crash file name.
pub fn read_leaks(dir: &std::path::Path) -> std::collections::HashMap<String, (LeakKind, String)> {
    let text = std::fs::read_to_string(dir.join(LEAKS)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut cols = l.splitn(3, '\t');
            let (name, kind) = (cols.next()?, LeakKind::from_name(cols.next()?)?);
            Some((name.to_string(), (kind, cols.next().unwrap_or_default().to_string())))
        })
        .collect()
}

/// An instance's persistent-mode figures, laid out as `fuzzer_stats`: `runs`, `reused_runs`,
/// `rerun_fresh`, `persistent_only`, `mode` (`executor`).
pub const PERSISTENT: &str = "persistent_stats";

/// An instance's figures of the multi-connection stage (`comux_share`), laid out as
/// `fuzzer_stats`: `stage_seconds`, `stage_finds`, and the campaign's `seconds` and `finds` since
/// the stage first came up.
pub const SEVERAL_CONNECTIONS: &str = "several_connections_stats";

pub fn now_secs() -> u64 {
    libafl_bolts::current_time().as_secs()
}
