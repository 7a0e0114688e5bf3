//! The live status line shown by the broker: totals over all clients, per-client speed.

use libafl::monitors::stats::{ClientStatsManager, UserStatsValue};
use libafl::monitors::Monitor;
use libafl::Error;
use libafl_bolts::ClientId;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct StatusLine {
    last: Option<Instant>,
    interval: Duration,
    /// On a terminal the line is redrawn in place; otherwise one line per interval.
    terminal: bool,
}

impl StatusLine {
    pub fn new(interval: Duration) -> Self {
        StatusLine { last: None, interval, terminal: std::io::stdout().is_terminal() }
    }
}

/// A per-client user statistic as a number (0 when absent).
fn number(value: Option<&UserStatsValue>) -> u64 {
    match value {
        Some(UserStatsValue::Number(n)) => *n,
        Some(UserStatsValue::Ratio(a, _)) => *a,
        _ => 0,
    }
}

impl Monitor for StatusLine {
    fn display(&mut self, stats: &mut ClientStatsManager, _event: &str, _sender: ClientId) -> Result<(), Error> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < self.interval) {
            return Ok(());
        }
        self.last = Some(now);
        let cur = libafl_bolts::current_time();
        let run_time = cur.saturating_sub(stats.start_time());
        let (mut execs, mut corpus, mut edges, mut crashes, mut hangs) = (0, 0, 0, 0, 0);
        let mut speeds = Vec::new();
        for id in stats.client_ids_sorted().to_vec() {
            let _ = stats.update_client_stats_for(id, |c| {
                if !c.enabled() {
                    return;
                }
                execs += c.executions();
                corpus += c.corpus_size();
                edges = edges.max(number(c.get_user_stats("edges").map(|s| s.value())));
                crashes += number(c.get_user_stats("crashes").map(|s| s.value()));
                hangs += number(c.get_user_stats("hangs").map(|s| s.value()));
                speeds.push(c.execs_per_sec(cur));
            });
        }
        let total: f64 = speeds.iter().sum();
        let per_client = if speeds.len() > 1 {
            format!(" [{}]", speeds.iter().map(|s| format!("{s:.0}")).collect::<Vec<_>>().join(" + "))
        } else {
            String::new()
        };
        let secs = run_time.as_secs();
        let line = format!(
            "[fuzz] {}:{:02}:{:02} | {execs} execs, {total:.0}/s{per_client} | corpus {corpus} | edges {edges} | crashes {crashes} | hangs {hangs}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        let mut out = std::io::stdout().lock();
        let _ = if self.terminal { write!(out, "\r\x1b[K{line}") } else { writeln!(out, "{line}") };
        let _ = out.flush();
        Ok(())
    }
}
