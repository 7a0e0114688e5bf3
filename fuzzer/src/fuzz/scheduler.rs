//! Which queue entry is fuzzed next: LibAFL's weighted scheduler over the favored entries
//! (AFL++'s default), with AFL++'s "pending favored first" in front of it.
//!
//! LibAFL's weight of an entry that was never fuzzed is a flat 1.0, while a favored entry that
//! was is weighted 5x and more: on a corpus of a few hundred entries a new entry then waits
//! minutes for its first turn, and with it the CmpLog trace that turns it into the next step of
//! a chain (a header name found, then the magic value the server compares it with). AFL++
//! doubles a new entry's weight instead. Here a new favored entry is fuzzed at the first
//! `next()` after it was added, once; every other choice is the weighted scheduler's.
//!
//! An entry kept only for a new transition between response codes (`+state`, no new edge) is
//! a step towards a state, not new code: it weighs a fifth of LibAFL's weight for it. At full
//! weight the sample server's queue gained some fifty such entries in 30 s, and bugs an HTTP
//! edit of a seed finds (an inverted `Range`) came two to three times later.

use super::{Edges, State};
use libafl::corpus::{Corpus, CorpusId, Testcase};
use libafl::inputs::BytesInput;
use libafl::observers::{HitcountsMapObserver, StdMapObserver};
use libafl::schedulers::minimizer::IsFavoredMetadata;
use libafl::schedulers::testcase_score::{CorpusWeightTestcaseScore, TestcaseScore};
use libafl::schedulers::{
    HasQueueCycles, IndexesLenTimeMinimizerScheduler, RemovableScheduler, Scheduler, WeightedScheduler,
};
use libafl::state::HasCorpus;
use libafl::{Error, HasMetadata};
use libafl_bolts::tuples::MatchName;
use libafl_bolts::SerdeAny;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

pub type Weighted = WeightedScheduler<Edges, StepsWeighLess, HitcountsMapObserver<StdMapObserver<'static, u8, false>>>;
type Minimizer = IndexesLenTimeMinimizerScheduler<Weighted, BytesInput, Edges>;

/// Marks a queue entry that made a new response-code transition and reached no new edge
/// (`names::QueueNames`).
#[derive(Debug, Clone, Serialize, Deserialize, SerdeAny)]
pub struct StateStep;

/// The factor of a [`StateStep`] entry's weight.
const STATE_STEP_WEIGHT: f64 = 0.2;

/// LibAFL's corpus weight (AFL++'s), a fifth of it for a [`StateStep`] entry.
#[derive(Debug)]
pub struct StepsWeighLess;

impl TestcaseScore<BytesInput, State> for StepsWeighLess {
    fn compute(state: &State, entry: &mut Testcase<BytesInput>) -> Result<f64, Error> {
        let weight = CorpusWeightTestcaseScore::compute(state, entry)?;
        Ok(if entry.has_metadata::<StateStep>() { weight * STATE_STEP_WEIGHT } else { weight })
    }
}

#[derive(Debug)]
pub struct NewFavoredFirst {
    inner: Minimizer,
    /// Entries added since the last `next()`, oldest first.
    pending: VecDeque<CorpusId>,
}

impl NewFavoredFirst {
    pub fn new(inner: Minimizer) -> Self {
        Self { inner, pending: VecDeque::new() }
    }

    /// The oldest pending entry that is favored and was never fuzzed; the others leave the
    /// pending list and are left to the weighted choice.
    fn pending_favored(&mut self, state: &State) -> Option<CorpusId> {
        while let Some(id) = self.pending.pop_front() {
            let Ok(testcase) = state.corpus().get(id) else { continue };
            let testcase = testcase.borrow();
            if testcase.scheduled_count() == 0 && testcase.has_metadata::<IsFavoredMetadata>() {
                return Some(id);
            }
        }
        None
    }
}

impl Scheduler<BytesInput, State> for NewFavoredFirst {
    fn on_add(&mut self, state: &mut State, id: CorpusId) -> Result<(), Error> {
        self.inner.on_add(state, id)?;
        self.pending.push_back(id);
        Ok(())
    }

    fn on_evaluation<OT: MatchName>(
        &mut self,
        state: &mut State,
        input: &BytesInput,
        observers: &OT,
    ) -> Result<(), Error> {
        self.inner.on_evaluation(state, input, observers)
    }

    fn next(&mut self, state: &mut State) -> Result<CorpusId, Error> {
        if self.pending.is_empty() {
            return self.inner.next(state);
        }
        // Culling marks the favored entries (the smallest, fastest one per covered edge).
        self.inner.cull(state)?;
        match self.pending_favored(state) {
            Some(id) => {
                self.inner.base_mut().set_current_scheduled(state, Some(id))?;
                Ok(id)
            }
            None => self.inner.next(state),
        }
    }

    fn set_current_scheduled(&mut self, state: &mut State, next_id: Option<CorpusId>) -> Result<(), Error> {
        self.inner.set_current_scheduled(state, next_id)
    }
}

impl RemovableScheduler<BytesInput, State> for NewFavoredFirst {
    fn on_remove(
        &mut self,
        state: &mut State,
        id: CorpusId,
        testcase: &Option<Testcase<BytesInput>>,
    ) -> Result<(), Error> {
        self.pending.retain(|&p| p != id);
        self.inner.on_remove(state, id, testcase)
    }

    fn on_replace(&mut self, state: &mut State, id: CorpusId, testcase: &Testcase<BytesInput>) -> Result<(), Error> {
        self.inner.on_replace(state, id, testcase)
    }
}

impl HasQueueCycles for NewFavoredFirst {
    fn queue_cycles(&self) -> u64 {
        self.inner.queue_cycles()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libafl::corpus::{InMemoryOnDiskCorpus, OnDiskCorpus};
    use libafl::feedbacks::MapIndexesMetadata;
    use libafl::observers::CanTrack;
    use libafl::schedulers::powersched::PowerSchedule;
    use libafl::state::StdState;
    use libafl_bolts::rands::StdRand;
    use std::time::Duration;

    /// A state on a scratch folder (kept while the first is), and an edge map.
    fn scratch_state() -> (tempfile::TempDir, State, Edges) {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        let state: State = StdState::new(
            StdRand::with_seed(7),
            InMemoryOnDiskCorpus::new(dir.join("queue")).unwrap(),
            OnDiskCorpus::new(dir.join("crashes")).unwrap(),
            &mut (),
            &mut (),
        )
        .unwrap();
        let map: StdMapObserver<'static, u8, false> = StdMapObserver::owned("edges", vec![0; 256]);
        (scratch, state, HitcountsMapObserver::new(map).track_indices())
    }

    #[test]
    fn a_state_step_is_chosen_a_fifth_as_often() {
        let (_scratch, mut state, edges) = scratch_state();
        let mut weighted = Weighted::with_schedule(&mut state, &edges, Some(PowerSchedule::fast()));
        let steps: Vec<CorpusId> = (0..20)
            .map(|i| {
                let mut testcase = Testcase::new(BytesInput::new(vec![b'a'; 8]));
                if i % 2 == 1 {
                    testcase.add_metadata(StateStep);
                }
                let id = state.corpus_mut().add(testcase).unwrap();
                weighted.on_add(&mut state, id).unwrap();
                id
            })
            .filter(|id| id.0 % 2 == 1)
            .collect();
        let draws = 12_000;
        let chosen = (0..draws).filter(|_| steps.contains(&weighted.next(&mut state).unwrap())).count();
        // Ten entries of weight 1 and ten of 0.2: a sixth of the draws.
        let share = chosen as f64 / f64::from(draws);
        assert!((0.13..0.2).contains(&share), "state steps got {share:.3} of the draws, not about 1/6");
    }

    #[test]
    fn a_new_favored_entry_is_fuzzed_next() {
        let (_scratch, mut state, edges) = scratch_state();
        let weighted = Weighted::with_schedule(&mut state, &edges, Some(PowerSchedule::fast()));
        let mut scheduler = NewFavoredFirst::new(IndexesLenTimeMinimizerScheduler::new(&edges, weighted));
        // Each entry covers an edge of its own, so each is favored.
        let add = |state: &mut State, scheduler: &mut NewFavoredFirst, edge: usize| {
            let mut testcase = Testcase::new(BytesInput::new(vec![b'a'; 8]));
            testcase.set_exec_time(Duration::from_millis(1));
            testcase.add_metadata(MapIndexesMetadata::new(vec![edge]));
            let id = state.corpus_mut().add(testcase).unwrap();
            scheduler.on_add(state, id).unwrap();
            id
        };
        // What `fuzz_one` does around the stages.
        let fuzz_one = |state: &mut State, scheduler: &mut NewFavoredFirst| {
            let id = scheduler.next(state).unwrap();
            let mut testcase = state.corpus().get(id).unwrap().borrow_mut();
            let count = testcase.scheduled_count();
            testcase.set_scheduled_count(count + 1);
            id
        };
        let old: Vec<CorpusId> = (0..50).map(|edge| add(&mut state, &mut scheduler, edge)).collect();
        // New entries go first, oldest first.
        for &id in &old {
            assert_eq!(fuzz_one(&mut state, &mut scheduler), id);
        }
        for _ in 0..20 {
            fuzz_one(&mut state, &mut scheduler);
        }
        // Among 50 fuzzed ones, a new entry's weight alone would give it about one chance in 51.
        let new = add(&mut state, &mut scheduler, 100);
        assert_eq!(fuzz_one(&mut state, &mut scheduler), new);
        assert!(scheduler.pending.is_empty());
    }
}
