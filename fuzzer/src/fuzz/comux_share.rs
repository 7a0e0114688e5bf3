//! How much time the multi-connection mutators (`comux_mutators::comux_mutations`) get.
//!
//! They have a stage of their own, after the HTTP stage, that runs on a scheduled entry only
//! when it is due, and again while it is ([`gate`], of a `WhileStage`): when the stage has had
//! less than its share of the time since it first came up. [`Measured`] counts the stage's
//! time and finds (new queue entries, crashes, hangs). The share is [`BASE_SHARE`] of the time, and grows
//! with the stage's yield: [`BASE_SHARE`] times how many times as many finds per second the
//! stage makes as the other stages, up to [`MAX_SHARE`] ([`ComuxShare::target`]). So where nothing
//! multi-connection pays off, nine tenths of the time goes to the other stages, which fuzz
//! single connections (and the chunks of the comux entries that did pay off, or are seeds).
//! Simulated in the tests (turns of 1 s of the other stages, finding 0.01/s, and 1 s of this
//! stage when due; 10 h): the stage finding nothing, or as much per second as the others:
//! 10.0% of the time; 3x as much: 29.7%; 10x: 49.9% (the cap).
//!
//! In 120 s campaigns: 12% of the time on the sample server, 41% on `tests/servers/slowlock`,
//! whose bug only several connections find (README, "Clients of several connections").
//!
//! Time, not executions: a multi-connection run costs several connections, and AWAIT or
//! BYTEWISE chunks wait on the server.

use super::findings::{Findings, SEVERAL_CONNECTIONS};
use super::State;
use libafl::corpus::Corpus;
use libafl::stages::{Restartable, Stage};
use libafl::state::HasCorpus;
use libafl::{Error, HasMetadata};
use libafl_bolts::current_time;
use libafl_bolts::SerdeAny;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The stage's share of the time when it finds no more than the rest.
pub const BASE_SHARE: f64 = 0.10;
/// The most it gets however well it does.
pub const MAX_SHARE: f64 = 0.50;
/// The prior: the stage counts as having run this long already, finding at the other stages'
/// rate, so that a first lucky find (or a slow start) does not swing the share.
const PRIOR: Duration = Duration::from_secs(300);

/// The stage's account, in the fuzzer state.
#[derive(Debug, Default, Clone, Serialize, Deserialize, SerdeAny)]
pub struct ComuxShare {
    /// When the stage first came up (since the epoch), and the campaign's finds then.
    pub start: Option<(Duration, u64)>,
    /// Time in the stage, and what it found.
    pub stage_time: Duration,
    pub stage_finds: u64,
}

impl ComuxShare {
    /// The share of the time the stage should have had after `elapsed`, in which the campaign
    /// (the stage included) found `finds` things: the base share times how many times as many
    /// finds per second the stage made as the other stages.
    pub fn target(&self, elapsed: Duration, finds: u64) -> f64 {
        let others_time = elapsed.saturating_sub(self.stage_time) + PRIOR;
        let others = (finds.saturating_sub(self.stage_finds) as f64 + 1.0) / others_time.as_secs_f64();
        let stage = (self.stage_finds as f64 + others * PRIOR.as_secs_f64()) / (self.stage_time + PRIOR).as_secs_f64();
        let edge = stage / others;
        (BASE_SHARE * edge).clamp(BASE_SHARE, MAX_SHARE)
    }

    /// Whether the stage should run now: it has had no more than its share so far.
    pub fn is_due(&self, elapsed: Duration, finds: u64) -> bool {
        self.stage_time.as_secs_f64() <= self.target(elapsed, finds) * elapsed.as_secs_f64()
    }
}

/// Queue entries, crashes and hangs so far.
fn finds(state: &State) -> u64 {
    let findings = state.metadata::<Findings>().map_or(0, |f| f.crashes + f.hangs);
    state.corpus().count() as u64 + findings
}

/// Rounds of the stage on one scheduled entry at most, however far behind its share it is.
const MAX_ROUNDS: u32 = 8;

/// The gate of the multi-connection stage (a `WhileStage` closure): another round while the
/// stage is due, up to [`MAX_ROUNDS`] on one entry. One round each time an entry comes up
/// would cap its share at what one round takes beside the other stages' (about a tenth on
/// the sample server, whatever the stage finds).
pub fn gate<E, EM, Z>() -> impl FnMut(&mut Z, &mut E, &mut State, &mut EM) -> Result<bool, Error> {
    let mut rounds = 0;
    move |_, _, state, _| {
        let (now, finds) = (current_time(), finds(state));
        let share = state.metadata_or_insert_with(ComuxShare::default);
        let (start, finds_at_start) = *share.start.get_or_insert((now, finds));
        let due = rounds < MAX_ROUNDS && share.is_due(now.saturating_sub(start), finds.saturating_sub(finds_at_start));
        rounds = if due { rounds + 1 } else { 0 };
        Ok(due)
    }
}

/// Write the stage's figures (`findings::SEVERAL_CONNECTIONS`) into instance folder `dir`, if it
/// has come up.
pub fn write(state: &State, dir: &Path) -> std::io::Result<()> {
    let Some(share) = state.metadata::<ComuxShare>().ok() else { return Ok(()) };
    let Some((start, finds_at_start)) = share.start else { return Ok(()) };
    let rows = [
        ("stage_seconds", share.stage_time.as_secs()),
        ("stage_finds", share.stage_finds),
        ("seconds", current_time().saturating_sub(start).as_secs()),
        ("finds", finds(state).saturating_sub(finds_at_start)),
    ];
    std::fs::write(
        dir.join(SEVERAL_CONNECTIONS),
        rows.iter().map(|(key, value)| format!("{key:<18}: {value}\n")).collect::<String>(),
    )
}

/// A stage whose time and finds are added to [`ComuxShare`].
pub struct Measured<ST>(pub ST);

impl<E, EM, Z, ST: Stage<E, EM, State, Z>> Stage<E, EM, State, Z> for Measured<ST> {
    fn perform(&mut self, fuzzer: &mut Z, executor: &mut E, state: &mut State, mgr: &mut EM) -> Result<(), Error> {
        let (before, finds_before) = (current_time(), finds(state));
        let result = self.0.perform(fuzzer, executor, state, mgr);
        let (time, found) = (current_time().saturating_sub(before), finds(state).saturating_sub(finds_before));
        let share = state.metadata_or_insert_with(ComuxShare::default);
        share.stage_time += time;
        share.stage_finds += found;
        result
    }
}

impl<ST: Restartable<State>> Restartable<State> for Measured<ST> {
    fn should_restart(&mut self, state: &mut State) -> Result<bool, Error> {
        self.0.should_restart(state)
    }

    fn clear_progress(&mut self, state: &mut State) -> Result<(), Error> {
        self.0.clear_progress(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stage's share of the time after `hours` of turns: each turn the other stages take
    /// 1 s and find `other_rate` things a second; the stage, when due, takes 1 s and finds
    /// `stage_rate` a second.
    fn simulate(other_rate: f64, stage_rate: f64, hours: u64) -> f64 {
        let mut share = ComuxShare::default();
        let (mut elapsed, mut finds) = (Duration::ZERO, 0u64);
        let (mut other_found, mut stage_found) = (0.0, 0.0);
        while elapsed < Duration::from_secs(hours * 3600) {
            if share.is_due(elapsed, finds) {
                stage_found += stage_rate;
                let new = stage_found as u64 - share.stage_finds;
                share.stage_finds += new;
                share.stage_time += Duration::from_secs(1);
                elapsed += Duration::from_secs(1);
            }
            other_found += other_rate;
            finds = share.stage_finds + other_found as u64;
            elapsed += Duration::from_secs(1);
        }
        share.stage_time.as_secs_f64() / elapsed.as_secs_f64()
    }

    #[test]
    fn the_stage_gets_a_tenth_of_the_time_until_it_pays_off() {
        let nothing = simulate(0.01, 0.0, 10);
        assert!((0.095..=0.105).contains(&nothing), "{nothing}");
        let equal = simulate(0.01, 0.01, 10);
        assert!((0.095..=0.11).contains(&equal), "{equal}");
        let three_times = simulate(0.01, 0.03, 10);
        assert!((0.28..=0.31).contains(&three_times), "{three_times}");
        let ten_times = simulate(0.01, 0.1, 10);
        assert!((0.49..=0.51).contains(&ten_times), "{ten_times}");
        assert_eq!(simulate(0.0, 0.0, 10), 0.1, "nothing found anywhere");
    }

    #[test]
    fn a_campaign_that_finds_nothing_keeps_the_base_share() {
        let share = ComuxShare { start: None, stage_time: Duration::from_secs(100), stage_finds: 0 };
        assert_eq!(share.target(Duration::from_secs(1000), 0), BASE_SHARE);
        assert!(share.is_due(Duration::from_secs(1000), 0));
        assert!(!share.is_due(Duration::from_secs(999), 0));
    }
}
