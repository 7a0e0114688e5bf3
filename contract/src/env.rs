//! The environment variables the fuzzer sets for a server run and the preload or the runtime
//! read (NUL-terminated, for `getenv`; [`name`] gives the `&str`). What each one does is told
//! where it is read: the preload's `lib.rs` and the runtime's `lib.rs`.

use core::ffi::CStr;

/// The variable's name without its NUL, for `std::process::Command::env`.
pub const fn name(var: &'static CStr) -> &'static str {
    match var.to_str() {
        Ok(name) => name,
        Err(_) => panic!("variable names are ASCII"),
    }
}

// AFL++'s, read by the runtime (and by AFL++'s own runtime in binaries it built).
/// The coverage map's segment id.
pub const AFL_SHM_ID: &CStr = c"__AFL_SHM_ID";
/// The test case's segment id (shared-memory input).
pub const AFL_SHM_FUZZ_ID: &CStr = c"__AFL_SHM_FUZZ_ID";
/// The CmpLog map's segment id, for the runtime's integer compares.
pub const AFL_CMPLOG_SHM_ID: &CStr = c"__AFL_CMPLOG_SHM_ID";
/// Start the fork server when `__afl_manual_init` is called (the preload does, at `listen`).
pub const AFL_DEFER_FORKSRV: &CStr = c"__AFL_DEFER_FORKSRV";
/// The fork server serves persistent children.
pub const AFL_PERSISTENT: &CStr = c"__AFL_PERSISTENT";

// Ours, read by the preload.
/// The CmpLog map's segment id, for the preload's string and memory compares.
pub const CMPLOG_SHM_ID: &CStr = c"SOCKFUZZ_CMPLOG_SHM_ID";
/// The control page's segment id ([`crate::control`]).
pub const CONTROL_SHM: &CStr = c"SOCKFUZZ_CONTROL_SHM";
/// `1`: print `[sockfuzz]` log lines.
pub const DEBUG: &CStr = c"SOCKFUZZ_DEBUG";
/// `0`: the EOF-spin verdict is off.
pub const EOF_SPIN: &CStr = c"SOCKFUZZ_EOF_SPIN";
/// A file that gets the message of a setup failure.
pub const ERROR_FILE: &CStr = c"SOCKFUZZ_ERROR_FILE";
/// A file that gets what an oracle found: a path traversal, the descriptors a leak kept open.
pub const FINDING_FILE: &CStr = c"SOCKFUZZ_FINDING_FILE";
/// Milliseconds of idleness before the idle verdict (unset: no verdict).
pub const IDLE: &CStr = c"SOCKFUZZ_IDLE";
/// The test case's file (else shared memory or stdin).
pub const INPUT_FILE: &CStr = c"SOCKFUZZ_INPUT_FILE";
/// `0`: the descriptor-leak and memory-leak oracles are off.
pub const LEAKS: &CStr = c"SOCKFUZZ_LEAKS";
/// Where the fuzzer finds `libsockfuzz.so` (read by the fuzzer alone).
pub const LIB: &CStr = c"SOCKFUZZ_LIB";
/// Megabytes of address space the server may use.
pub const MEM_LIMIT_MB: &CStr = c"SOCKFUZZ_MEM_LIMIT_MB";
/// `1`: the server runs in a network namespace of its own; `0` in the fuzzer's own
/// environment: never.
pub const NETNS: &CStr = c"SOCKFUZZ_NETNS";
/// `0`: the reply is not copied to stdout.
pub const OUTPUT: &CStr = c"SOCKFUZZ_OUTPUT";
/// Test cases one process serves.
pub const PERSISTENT: &CStr = c"SOCKFUZZ_PERSISTENT";
/// The web root: paths the server opens outside it are findings.
pub const ROOT: &CStr = c"SOCKFUZZ_ROOT";
/// The response-state map's segment id ([`crate::states`]); unset: no state feedback.
pub const STATES_SHM: &CStr = c"SOCKFUZZ_STATES_SHM";
/// Milliseconds a run's end waits for the server to settle.
pub const SETTLE_MS: &CStr = c"SOCKFUZZ_SETTLE_MS";
/// A descriptor that gets `L`, the port and the listener's pid, then the reply.
pub const STATUS_FD: &CStr = c"SOCKFUZZ_STATUS_FD";
