//! The fork-server executor with AFL++'s two timeouts and the preload's verdicts.
//!
//! A run over the short exec timeout is re-run once with the hang timeout: only if it times out
//! again is it a hang. A run the preload ended with its EOF-spin status is a hang at once; one it
//! ended with the traversal signal is a crash whose path the preload left in `finding_file`.

use super::findings::LastRun;
use crate::preload::{EXIT_EOF_SPIN, SIG_TRAVERSAL};
use libafl::executors::forkserver::ForkserverExecutor;
use libafl::executors::SetTimeout;
use libafl::executors::{Executor, ExitKind, HasObservers};
use libafl::observers::ObserversTuple;
use libafl::state::HasExecutions;
use libafl::{Error, HasMetadata};
use libafl_bolts::shmem::ShMem;
use libafl_bolts::tuples::RefIndexable;
use std::path::PathBuf;
use std::time::Duration;

pub struct ServerExecutor<I, OT, S, SHM> {
    inner: ForkserverExecutor<I, OT, S, SHM>,
    exec_timeout: Duration,
    hang_timeout: Duration,
    finding_file: PathBuf,
}

impl<I, OT, S, SHM> ServerExecutor<I, OT, S, SHM> {
    pub fn new(inner: ForkserverExecutor<I, OT, S, SHM>, hang_timeout: Duration, finding_file: PathBuf) -> Self {
        ServerExecutor { inner, exec_timeout: hang_timeout, hang_timeout, finding_file }
    }

    /// Set the short timeout (after calibration on the seeds).
    pub fn set_exec_timeout(&mut self, timeout: Duration) {
        self.exec_timeout = timeout;
        self.inner.set_timeout(timeout);
    }

    pub fn exec_timeout(&self) -> Duration {
        self.exec_timeout
    }

    pub fn inner(&self) -> &ForkserverExecutor<I, OT, S, SHM> {
        &self.inner
    }
}

impl<EM, I, OT, S, SHM, Z> Executor<EM, I, S, Z> for ServerExecutor<I, OT, S, SHM>
where
    I: libafl::inputs::Input + libafl::inputs::HasTargetBytes,
    OT: ObserversTuple<I, S>,
    S: HasExecutions + HasMetadata,
    SHM: ShMem,
    ForkserverExecutor<I, OT, S, SHM>: Executor<EM, I, S, Z> + HasObservers<Observers = OT>,
{
    fn run_target(&mut self, fuzzer: &mut Z, state: &mut S, mgr: &mut EM, input: &I) -> Result<ExitKind, Error> {
        let mut kind = self.inner.run_target(fuzzer, state, mgr, input)?;
        if kind == ExitKind::Timeout && self.exec_timeout < self.hang_timeout {
            // Slow is not hung: run it again with the hang timeout, on a fresh map.
            self.inner.observers_mut().pre_exec_all(state, input)?;
            self.inner.set_timeout(self.hang_timeout);
            let rerun = self.inner.run_target(fuzzer, state, mgr, input);
            self.inner.set_timeout(self.exec_timeout);
            kind = rerun?;
        }
        let status = self.inner.forkserver().status();
        if kind == ExitKind::Ok && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == EXIT_EOF_SPIN {
            kind = ExitKind::Timeout;
        }
        let signal = (kind == ExitKind::Crash && libc::WIFSIGNALED(status)).then(|| libc::WTERMSIG(status));
        let traversal = match signal {
            Some(SIG_TRAVERSAL) => {
                let finding = std::fs::read_to_string(&self.finding_file).ok().map(|t| t.trim_end().to_string());
                // So that a SIGUSR2 of the server's own is never taken for this traversal.
                let _ = std::fs::remove_file(&self.finding_file);
                finding
            }
            _ => None,
        };
        state.add_metadata(LastRun { signal, traversal });
        Ok(kind)
    }
}

impl<I, OT, S, SHM> HasObservers for ServerExecutor<I, OT, S, SHM>
where
    ForkserverExecutor<I, OT, S, SHM>: HasObservers<Observers = OT>,
{
    type Observers = OT;

    fn observers(&self) -> RefIndexable<&Self::Observers, Self::Observers> {
        self.inner.observers()
    }

    fn observers_mut(&mut self) -> RefIndexable<&mut Self::Observers, Self::Observers> {
        self.inner.observers_mut()
    }
}
