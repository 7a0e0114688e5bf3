//! What the broker shows while fuzzing: totals over all instances and a row per instance, drawn as
//! a full screen on a terminal (`screen`), else one plain line per second.

use super::instance_order;
use super::screen::Screen;
use super::snapshot::{clock, Row, Snapshot};
use libafl::monitors::stats::user_stats::TAG_CALIBRATE_STABILITY;
use libafl::monitors::stats::{ClientStatsManager, UserStatsValue};
use libafl::monitors::Monitor;
use libafl::Error;
use libafl_bolts::ClientId;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A status line a second; the screen redraws four times a second.
const LINE_INTERVAL: Duration = Duration::from_secs(1);
const SCREEN_INTERVAL: Duration = Duration::from_millis(250);

/// The broker's monitor: keeps the snapshot, and shows it as a screen or as lines.
pub struct Status {
    screen: Option<Screen>,
    /// Per instance: the counts last seen and when they last grew (campaign seconds), as LibAFL
    /// keeps no time per user statistic.
    seen: HashMap<ClientId, Row>,
    /// When the snapshot was last taken: at most once per `interval` (events come far more often).
    last: Option<Instant>,
    interval: Duration,
    /// Lines are redrawn in place on a terminal (with `--no-tui`); else one per second.
    terminal: bool,
}

impl Status {
    /// Plain lines; [`Status::start_screen`] switches to the screen.
    pub fn new() -> Self {
        Status {
            screen: None,
            seen: HashMap::new(),
            last: None,
            interval: LINE_INTERVAL,
            terminal: std::io::stdout().is_terminal(),
        }
    }

    /// Show `screen` (started in the broker, once the instances are forked), if there is one.
    pub fn start_screen(&mut self, screen: Option<Screen>) {
        if screen.is_some() {
            self.interval = SCREEN_INTERVAL;
        }
        self.screen = screen;
    }

    fn snapshot(&mut self, stats: &mut ClientStatsManager) -> Snapshot {
        let now = libafl_bolts::current_time();
        let run_time = now.saturating_sub(stats.start_time()).as_secs();
        let mut instances = Vec::new();
        for id in stats.client_ids_sorted().to_vec() {
            let row = stats.update_client_stats_for(id, |c| {
                c.enabled().then(|| Row {
                    name: match c.get_user_stats("client").map(|s| s.value()) {
                        Some(UserStatsValue::String(name)) => name.to_string(),
                        _ => format!("client {}", id.0),
                    },
                    execs: c.executions(),
                    speed: c.execs_per_sec(now),
                    corpus: c.corpus_size(),
                    edges: number(c.get_user_stats("edges").map(|s| s.value())),
                    crashes: number(c.get_user_stats("crashes").map(|s| s.value())),
                    hangs: number(c.get_user_stats("hangs").map(|s| s.value())),
                    leaks: ["descriptor leaks", "memory leaks"].map(|k| number(c.get_user_stats(k).map(|s| s.value()))),
                    cycles: number(c.get_user_stats("cycles").map(|s| s.value())),
                    // LibAFL's calibration names it after the map feedback; its tag is fixed.
                    stability: c.user_stats_by_tag(TAG_CALIBRATE_STABILITY).find_map(|s| match s.value() {
                        UserStatsValue::Ratio(a, b) if *b > 0 => Some(*a as f64 * 100.0 / *b as f64),
                        _ => None,
                    }),
                    ..Row::default()
                })
            });
            let Ok(Some(mut row)) = row else { continue };
            let seen = self.seen.entry(id).or_default();
            let grew = |was: u64, is: u64, when: Option<u64>| if is > was { Some(run_time) } else { when };
            row.last_path = grew(seen.corpus, row.corpus, seen.last_path);
            row.last_crash = grew(seen.crashes, row.crashes, seen.last_crash);
            row.last_hang = grew(seen.hangs, row.hangs, seen.last_hang);
            *seen = row.clone();
            instances.push(row);
        }
        instances.sort_by(|a, b| instance_order(&a.name).cmp(&instance_order(&b.name)));
        Snapshot { run_time, instances }
    }

    fn line(&self, s: &Snapshot) {
        let per_instance = if s.instances.len() > 1 {
            let speeds: Vec<String> = s.instances.iter().map(|c| format!("{:.0}", c.speed)).collect();
            format!(" [{}]", speeds.join(" + "))
        } else {
            String::new()
        };
        let leaks = if s.leaks() == [0, 0] { String::new() } else { format!(" (leaks: {})", s.leaks_text()) };
        let line = format!(
            "[fuzz] {} | {} execs, {:.0}/s{per_instance} | corpus {} | edges {} | crashes {}{leaks} | hangs {}",
            clock(s.run_time),
            s.execs(),
            s.speed(),
            s.corpus(),
            s.edges(),
            s.crashes(),
            s.hangs()
        );
        let mut out = std::io::stdout().lock();
        let _ = if self.terminal { write!(out, "\r\x1b[K{line}") } else { writeln!(out, "{line}") };
        let _ = out.flush();
    }
}

/// A per-instance user statistic as a number (0 when absent).
fn number(value: Option<&UserStatsValue>) -> u64 {
    match value {
        Some(UserStatsValue::Number(n)) => *n,
        Some(UserStatsValue::Ratio(a, _)) => *a,
        _ => 0,
    }
}

impl Monitor for Status {
    fn display(&mut self, stats: &mut ClientStatsManager, _event: &str, _sender: ClientId) -> Result<(), Error> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < self.interval) {
            return Ok(());
        }
        self.last = Some(now);
        let snapshot = self.snapshot(stats);
        match &self.screen {
            Some(screen) => screen.update(snapshot),
            None => self.line(&snapshot),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_sort_by_core_number() {
        let mut names = vec!["fuzz10", "fuzz2-asan", "fuzz2", "fuzz1"];
        names.sort_by_key(|n| instance_order(n));
        assert_eq!(names, ["fuzz1", "fuzz2", "fuzz2-asan", "fuzz10"]);
    }
}
