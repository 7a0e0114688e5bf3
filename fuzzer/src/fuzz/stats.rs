//! `fuzzer_stats` and `plot_data` in AFL++ 4.04c's format (keys, order, columns), so
//! afl-whatsup, afl-plot and the course scripts read them. Written every few seconds and at
//! the end, each time to a temporary file renamed over the old one.
//!
//! Why not LibAFL's `AflStatsStage` (0.16): its keys are not AFL++ 4.04c's (`cycles_wo_find`
//! for `cycles_wo_finds`, `start_time` twice; `plot_data` columns `total_edges`/`execs_done` for
//! `map_size`/`total_execs`), it counts crashes and hangs only with the `track_hit_feedbacks`
//! feature and only for LibAFL's own crash and timeout feedbacks (ours is the AFL++-novelty
//! objective in `objective`, with the preload's verdicts), and as a stage it writes only
//! between test cases, never at the end of a campaign or when an instance is stopped.

use super::findings::Findings;
use libafl::corpus::{Corpus, HasTestcase, SchedulerTestcaseMetadata};
use libafl::schedulers::minimizer::IsFavoredMetadata;
use libafl::stages::calibrate::UnstableEntriesMetadata;
use libafl::state::{HasCorpus, HasExecutions, HasImported, HasStartTime};
use libafl::HasMetadata;
use libafl_bolts::HasLen;
use nix::sys::resource::{getrusage, UsageWho};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_secs(5);
const PLOT_HEADER: &str = "# relative_time, cycles_done, cur_item, corpus_count, pending_total, pending_favs, map_size, saved_crashes, saved_hangs, max_depth, execs_per_sec, total_execs, edges_found\n";

/// Fixed facts about the run, written into every `fuzzer_stats`.
pub struct RunInfo {
    pub banner: String,
    pub command_line: String,
    pub core: usize,
    pub total_edges: usize,
}

pub struct AflStats {
    dir: PathBuf,
    info: RunInfo,
    last_write: Option<Instant>,
    /// (when, executions) samples of the last minute, for `execs_ps_last_min`.
    samples: VecDeque<(Instant, u64)>,
    last_plot_row: String,
    cycles_wo_finds: u64,
    last_cycle: (u64, usize),
}

impl AflStats {
    pub fn new(dir: &Path, info: RunInfo) -> std::io::Result<Self> {
        let plot = dir.join("plot_data");
        if !plot.exists() {
            std::fs::write(&plot, PLOT_HEADER)?;
        }
        Ok(AflStats {
            dir: dir.to_path_buf(),
            info,
            last_write: None,
            samples: VecDeque::new(),
            last_plot_row: String::new(),
            cycles_wo_finds: 0,
            last_cycle: (0, 0),
        })
    }

    /// Write both files if they are due (or `force`); whether it did.
    pub fn update<I: HasLen, S>(
        &mut self,
        state: &S,
        cycles: u64,
        exec_timeout: Duration,
        force: bool,
    ) -> std::io::Result<bool>
    where
        S: HasCorpus<I> + HasExecutions + HasStartTime + HasMetadata + HasTestcase<I> + HasImported,
    {
        let now = Instant::now();
        if !force && self.last_write.is_some_and(|t| now - t < INTERVAL) {
            return Ok(false);
        }
        self.last_write = Some(now);
        let execs = *state.executions();
        self.samples.push_back((now, execs));
        while self.samples.front().is_some_and(|(t, _)| now - *t > Duration::from_secs(60)) {
            self.samples.pop_front();
        }
        let snap = Snapshot::take(state, cycles);
        if cycles > self.last_cycle.0 {
            self.cycles_wo_finds = if snap.corpus_count == self.last_cycle.1 { self.cycles_wo_finds + 1 } else { 0 };
            self.last_cycle = (cycles, snap.corpus_count);
        }
        self.write_stats(&snap, exec_timeout)?;
        self.append_plot(&snap)?;
        Ok(true)
    }

    fn execs_per_sec(&self, snap: &Snapshot) -> f64 {
        execs_per_sec(snap.execs, snap.run_time)
    }

    fn execs_last_min(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, e0)), Some((t1, e1))) if t1 > t0 => (e1 - e0) as f64 / (*t1 - *t0).as_secs_f64(),
            _ => 0.0,
        }
    }

    fn write_stats(&self, s: &Snapshot, exec_timeout: Duration) -> std::io::Result<()> {
        let f = &s.findings;
        let now = super::findings::now_secs();
        let stability = s.stability.map_or("100.00%".to_string(), |v| format!("{v:.2}%"));
        let rows: [(&str, String); 42] = [
            ("start_time", s.start_time.to_string()),
            ("last_update", now.to_string()),
            ("run_time", s.run_time.as_secs().to_string()),
            ("fuzzer_pid", std::process::id().to_string()),
            ("cycles_done", s.cycles.to_string()),
            ("cycles_wo_finds", self.cycles_wo_finds.to_string()),
            ("execs_done", s.execs.to_string()),
            ("execs_per_sec", format!("{:.2}", self.execs_per_sec(s))),
            ("execs_ps_last_min", format!("{:.2}", self.execs_last_min())),
            ("corpus_count", s.corpus_count.to_string()),
            ("corpus_favored", s.favored.to_string()),
            ("corpus_found", (s.corpus_count as u64).saturating_sub(f.seeds + s.imported).to_string()),
            ("corpus_imported", s.imported.to_string()),
            ("corpus_variable", "0".into()),
            ("max_depth", s.max_depth.to_string()),
            ("cur_item", s.cur_item.to_string()),
            ("pending_favs", s.pending_favs.to_string()),
            ("pending_total", s.pending_total.to_string()),
            ("stability", stability),
            ("bitmap_cvg", format!("{:.2}%", self.coverage(f))),
            ("saved_crashes", f.crashes.to_string()),
            ("saved_hangs", f.hangs.to_string()),
            ("last_find", f.last_find.to_string()),
            ("last_crash", f.last_crash.to_string()),
            ("last_hang", f.last_hang.to_string()),
            ("execs_since_crash", (s.execs - f.execs_at_crash.min(s.execs)).to_string()),
            ("exec_timeout", exec_timeout.as_millis().to_string()),
            ("slowest_exec_ms", s.slowest_ms.to_string()),
            ("peak_rss_mb", peak_rss_mb().to_string()),
            ("cpu_affinity", self.info.core.to_string()),
            ("edges_found", f.edges.to_string()),
            ("total_edges", self.info.total_edges.to_string()),
            ("var_byte_count", "0".into()),
            ("havoc_expansion", "0".into()),
            ("auto_dict_entries", "0".into()),
            ("testcache_size", s.bytes.to_string()),
            ("testcache_count", s.corpus_count.to_string()),
            ("testcache_evict", "0".into()),
            ("afl_banner", self.info.banner.clone()),
            ("afl_version", format!("pserv-fuzz-{}", env!("CARGO_PKG_VERSION"))),
            ("target_mode", "default".into()),
            ("command_line", self.info.command_line.clone()),
        ];
        let mut text = String::new();
        for (key, value) in rows {
            let _ = writeln!(text, "{key:<18}: {value}");
        }
        let tmp = self.dir.join(".fuzzer_stats_tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, self.dir.join("fuzzer_stats"))
    }

    fn coverage(&self, f: &Findings) -> f64 {
        100.0 * f.edges as f64 / self.info.total_edges.max(1) as f64
    }

    /// One row per interval; during the first minute only when something changed (AFL++).
    fn append_plot(&mut self, s: &Snapshot) -> std::io::Result<()> {
        let f = &s.findings;
        let columns = format!(
            "{}, {}, {}, {}, {}, {:.2}%, {}, {}, {}",
            s.cycles,
            s.cur_item,
            s.corpus_count,
            s.pending_total,
            s.pending_favs,
            self.coverage(f),
            f.crashes,
            f.hangs,
            s.max_depth
        );
        if columns == self.last_plot_row && s.run_time < Duration::from_secs(60) {
            return Ok(());
        }
        let row =
            format!("{}, {columns}, {:.2}, {}, {}\n", s.run_time.as_secs(), self.execs_per_sec(s), s.execs, f.edges);
        self.last_plot_row = columns;
        let mut file = std::fs::OpenOptions::new().append(true).create(true).open(self.dir.join("plot_data"))?;
        file.write_all(row.as_bytes())
    }
}

pub fn execs_per_sec(execs: u64, run_time: Duration) -> f64 {
    execs as f64 / run_time.as_secs_f64().max(0.001)
}

/// Peak resident memory of the target processes, in MB (AFL++ reports the children's).
fn peak_rss_mb() -> i64 {
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0, |usage| usage.max_rss() / 1024)
}

/// The numbers of one write, read from the state.
struct Snapshot {
    findings: Findings,
    start_time: u64,
    run_time: Duration,
    execs: u64,
    /// Queue entries that came from other instances (LibAFL's count).
    imported: u64,
    cycles: u64,
    corpus_count: usize,
    favored: usize,
    pending_favs: usize,
    pending_total: usize,
    max_depth: u64,
    cur_item: usize,
    slowest_ms: u128,
    bytes: usize,
    stability: Option<f64>,
}

impl Snapshot {
    fn take<I: HasLen, S>(state: &S, cycles: u64) -> Self
    where
        S: HasCorpus<I> + HasExecutions + HasStartTime + HasMetadata + HasTestcase<I> + HasImported,
    {
        let start = *state.start_time();
        let corpus = state.corpus();
        let mut snap = Snapshot {
            findings: state.metadata::<Findings>().cloned().unwrap_or_default(),
            start_time: start.as_secs(),
            run_time: libafl_bolts::current_time().saturating_sub(start),
            execs: *state.executions(),
            imported: *state.imported() as u64,
            cycles,
            corpus_count: corpus.count(),
            favored: 0,
            pending_favs: 0,
            pending_total: 0,
            max_depth: 0,
            cur_item: corpus.current().map_or(0, |id| id.0),
            slowest_ms: 0,
            bytes: 0,
            stability: state.metadata::<UnstableEntriesMetadata>().ok().map(|m| {
                let filled = m.filled_entries_count().max(1) as f64;
                100.0 * (filled - m.unstable_entries().len() as f64) / filled
            }),
        };
        for id in corpus.ids() {
            let Ok(cell) = corpus.get(id) else { continue };
            let testcase = cell.borrow();
            let favored = testcase.has_metadata::<IsFavoredMetadata>();
            let pending = testcase.scheduled_count() == 0;
            snap.favored += usize::from(favored);
            snap.pending_total += usize::from(pending);
            snap.pending_favs += usize::from(pending && favored);
            if let Ok(meta) = testcase.metadata::<SchedulerTestcaseMetadata>() {
                snap.max_depth = snap.max_depth.max(meta.depth());
            }
            if let Some(time) = testcase.exec_time() {
                snap.slowest_ms = snap.slowest_ms.max(time.as_millis());
            }
            if let Some(input) = testcase.input() {
                snap.bytes += input.len();
            }
        }
        snap
    }
}
