//! CmpLog / input-to-state, the way AFL++'s `-c` works, on LibAFL's stages.
//!
//! Each client starts a second copy of the server under its own fork server, on its own port,
//! with `__AFL_CMPLOG_SHM_ID` set: there the runtime's `trace-cmp` callbacks and the preload's
//! `strcmp`/`memcmp` hooks log every comparison's operands into the shared CmpLog map (AFL++'s
//! layout, read by `libafl_targets::AflppCmpLogObserver`). Once per queue entry, colorization
//! finds the bytes that can change without changing the path, the tracer runs the entry and
//! its colorized copy, and `AflppRedQueen` writes the values the server compared against
//! (a method, a header name, a magic token) where the entry's bytes were compared.

use super::State;
use libafl::corpus::Testcase;
use libafl::executors::forkserver::{ForkserverExecutor, ForkserverExecutorBuilder};
use libafl::inputs::BytesInput;
use libafl::state::HasCurrentTestcase;
use libafl::Error;
use libafl_bolts::ownedref::OwnedRefMut;
use libafl_bolts::shmem::{ShMem, ShMemProvider, UnixShMem, UnixShMemProvider};
use libafl_bolts::tuples::{tuple_list, Handled};
use libafl_bolts::StdTargetArgs;
use libafl_targets::{AflppCmpLogMap, AflppCmpLogObserver, AflppCmplogTracingStage};

/// Entries longer than this are not traced: colorization costs up to two runs per byte.
const MAX_TRACED_LEN: usize = 4096;

pub type Tracer = ForkserverExecutor<BytesInput, (AflppCmpLogObserver<'static>, ()), State, UnixShMem>;

/// The tracing stage over a fork server built from `server` (a copy of the server on its own
/// port), and the shared map it reads, which must be kept alive as long as the stage.
pub fn tracing_stage<EM, Z>(
    server: ForkserverExecutorBuilder<'static, UnixShMemProvider>,
) -> Result<(AflppCmplogTracingStage<'static, EM, Tracer, State, Z>, UnixShMem), Error> {
    let mut map = UnixShMemProvider::new()?.new_shmem(size_of::<AflppCmpLogMap>())?;
    let id = map.id().to_string();
    // SAFETY: the segment is zeroed by the kernel (a valid, empty map), at least as large as
    // an AflppCmpLogMap, page-aligned, and outlives the observer (the caller keeps `map`).
    let cmp_map = unsafe { OwnedRefMut::from_mut_ptr(map.as_mut_ptr().cast::<AflppCmpLogMap>()) };
    let observer = AflppCmpLogObserver::new("cmplog", cmp_map, true);
    let handle = observer.handle();
    let tracer = server.env("__AFL_CMPLOG_SHM_ID", id).build(tuple_list!(observer))?;
    Ok((AflppCmplogTracingStage::new(tracer, handle), map))
}

/// Whether the current entry gets colorized and traced: once, the second time it is scheduled
/// (an entry has to be worth coming back to), and only if it is short enough.
pub fn worth_tracing<E, EM, Z>(_: &mut Z, _: &mut E, state: &mut State, _: &mut EM) -> Result<bool, Error> {
    let testcase: std::cell::Ref<'_, Testcase<BytesInput>> = state.current_testcase()?;
    let len = testcase.input().as_ref().map_or(usize::MAX, |input| input.as_ref().len());
    Ok(testcase.scheduled_count() == 1 && len <= MAX_TRACED_LEN)
}
