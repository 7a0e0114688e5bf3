//! AFL++ file names for queue entries (`src:`, `time:`, `execs:`, `op:`, `+cov`; ours: `+state`
//! for an entry that made a new transition between response codes), shared with the
//! objective's crash and hang names, and which runs may enter the queue.
//!
//! Two feedbacks that are never "interesting" on their own for the queue (`QueueNames`, used
//! with OR); the objective (`objective::Solutions`) decides and names crashes and hangs.
//!
//! `op:` is the stage (`instance::SetOp`), followed by the named mutators that changed the
//! input (`op:comux+conn-add+flag-reset`, `op:http+long-field`): such a mutator calls
//! [`note_op`], and the stage's mutator is wrapped in [`OpsNamed`], which starts each round
//! with no names.

use super::findings::{now_secs, CurrentOp, Findings, Loading};
use super::scheduler::StateStep;
use super::{Edges, States};
use libafl::corpus::{Corpus, Testcase};
use libafl::executors::ExitKind;
use libafl::feedbacks::{ExitKindLogic, Feedback, StateInitializer};
use libafl::mutators::{MutationResult, Mutator};
use libafl::state::{HasCorpus, HasExecutions, HasStartTime};
use libafl::{Error, HasMetadata};
use libafl_bolts::tuples::{Handle, MatchName, MatchNameRef};
use libafl_bolts::Named;
use std::borrow::Cow;

/// The covered map of the last run (AFL-bucketed hit counts).
pub(super) fn map<'a, OT: MatchName>(observers: &'a OT, edges: &Handle<Edges>) -> Result<&'a [u8], Error> {
    let observer = observers.get(edges).ok_or_else(|| Error::key_not_found("edges observer"))?;
    Ok(&observer.as_ref()[..])
}

/// `src:NNNNNN,time:MS,execs:N,op:OP` — where an input came from.
pub(super) fn origin<I, S>(state: &S) -> String
where
    S: HasCorpus<I> + HasExecutions + HasStartTime + HasMetadata,
{
    let src = state.corpus().current().map_or(0, |id| id.0);
    let op = state.metadata::<CurrentOp>().map_or_else(|_| "havoc".to_string(), CurrentOp::name);
    format!("src:{src:06},{},op:{op}", time_execs(state))
}

/// `time:MS,execs:N` — milliseconds since the start and executions so far.
fn time_execs<S: HasExecutions + HasStartTime>(state: &S) -> String {
    let time = libafl_bolts::current_time().saturating_sub(*state.start_time()).as_millis();
    format!("time:{time},execs:{}", state.executions())
}

/// Record that the mutator called `name` changed this round's input (named once per round).
pub fn note_op<S: HasMetadata>(state: &mut S, name: &str) {
    let op = state.metadata_or_insert_with(|| CurrentOp::new("havoc"));
    if !op.mutators.iter().any(|m| m == name) {
        op.mutators.push(name.to_string());
    }
}

/// A stage's mutator whose rounds each start with no mutator names (see the module).
#[derive(Debug)]
pub struct OpsNamed<M>(pub M);

impl<M: Named> Named for OpsNamed<M> {
    fn name(&self) -> &Cow<'static, str> {
        self.0.name()
    }
}

impl<I, S: HasMetadata, M: Mutator<I, S>> Mutator<I, S> for OpsNamed<M> {
    fn mutate(&mut self, state: &mut S, input: &mut I) -> Result<MutationResult, Error> {
        let forget = |state: &mut S| {
            if let Ok(op) = state.metadata_mut::<CurrentOp>() {
                op.mutators.clear();
            }
        };
        forget(state);
        let result = self.0.mutate(state, input)?;
        if result == MutationResult::Skipped {
            forget(state); // a round given up after a named edit (too long, say)
        }
        Ok(result)
    }

    fn post_exec(&mut self, state: &mut S, id: Option<libafl::corpus::CorpusId>) -> Result<(), Error> {
        self.0.post_exec(state, id)
    }
}

/// Names queue entries like AFL++ and tracks which map entries the queue covers (`+cov`), and
/// which response-code transitions it made (`+state`).
pub struct QueueNames {
    edges: Handle<Edges>,
    states: Handle<States>,
    covered: Vec<bool>,
    transitions: Vec<bool>,
}

impl QueueNames {
    pub fn new(edges: Handle<Edges>, states: Handle<States>) -> Self {
        QueueNames { edges, states, covered: Vec::new(), transitions: Vec::new() }
    }
}

impl Named for QueueNames {
    fn name(&self) -> &Cow<'static, str> {
        static NAME: Cow<'static, str> = Cow::Borrowed("QueueNames");
        &NAME
    }
}

impl<S> StateInitializer<S> for QueueNames {}

/// Marks in `seen` the nonzero entries of `map` it did not have; how many.
fn newly_seen(seen: &mut Vec<bool>, map: &[u8]) -> u64 {
    if seen.len() < map.len() {
        seen.resize(map.len(), false);
    }
    let mut new = 0;
    for (i, _) in map.iter().enumerate().filter(|(_, &c)| c != 0) {
        if !seen[i] {
            seen[i] = true;
            new += 1;
        }
    }
    new
}

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
        let new_edges = newly_seen(&mut self.covered, map(observers, &self.edges)?);
        let states = observers.get(&self.states).ok_or_else(|| Error::key_not_found("states observer"))?;
        let new_states = newly_seen(&mut self.transitions, &states.as_ref()[..]);
        let id = state.corpus().peek_free_id().0;
        let name = match state.metadata::<Loading>().ok() {
            Some(Loading::Resumed(name)) => name.clone(),
            Some(Loading::Seed(orig)) => format!("id:{id:06},time:0,execs:0,orig:{orig}"),
            None if state.metadata::<CurrentOp>().is_ok_and(|op| op.stage == "sync") => {
                format!("id:{id:06},sync:peer,{}", time_execs(state))
            }
            None => format!(
                "id:{id:06},{}{}{}",
                origin(state),
                if new_edges > 0 { ",+cov" } else { "" },
                if new_states > 0 { ",+state" } else { "" }
            ),
        };
        *testcase.filename_mut() = Some(name);
        let loading = state.has_metadata::<Loading>();
        if new_edges == 0 && new_states > 0 && !loading {
            testcase.add_metadata(StateStep);
        }
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
