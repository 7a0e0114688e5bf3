//! The fuzzer's control page (`SOCKFUZZ_CONTROL_SHM`): a SysV segment the fuzzer writes before
//! each run and the preload reads during it, attached before the fork server starts so that
//! every run shares it.

/// Byte set: a patient run (a hang candidate re-run): no idle verdict.
pub const PATIENT: usize = 0;
/// Byte set: fork mode: no persistent runs (one test case per process).
pub const FORK_MODE: usize = 1;
/// Byte set: the run confirms in a fresh process what a reused one found (persistent mode): the
/// memory-leak check is made whatever its time budget says.
pub const CONFIRM: usize = 2;
/// Bytes 4..8, a `u32` in native byte order: the spin verdict's bound in microseconds (the
/// preload's `spin`), derived from the seeds' run times; 0: no spin verdict.
pub const SPIN_US: usize = 4;
/// Bytes of the page.
pub const LEN: usize = 8;
