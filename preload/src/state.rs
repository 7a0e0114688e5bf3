//! Process-wide state shared by the hooks (server threads) and the client thread.
//!
//! Plain atomics: hooks run on arbitrary server threads, possibly inside signal handlers, so no
//! locks. A process forked by the server inherits a copy, which is what we want (its reads of
//! our connection still count towards the EOF spin); what its other processes must see of each
//! other is in `shared`.

use contract::env;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32};
use std::sync::OnceLock;

/// Set once, by the first `listen()` on a TCP socket: the client has been started.
pub static TRIGGERED: AtomicBool = AtomicBool::new(false);
/// The listening socket the client connects to.
pub static LISTEN_FD: AtomicI32 = AtomicI32::new(-1);
/// This process accepted our connection (what every process of the server sees is in `shared`).
pub static ACCEPTED: AtomicBool = AtomicBool::new(false);
/// The server's fd of our connection (-1 before accept and after the server closed it).
pub static CONN_FD: AtomicI32 = AtomicI32::new(-1);
/// Consecutive zero-byte reads of `CONN_FD`.
pub static EOF_READS: AtomicU32 = AtomicU32::new(0);
/// `fork()` calls in progress after accept (closes the race "EOF before fork returned").
pub static FORKING: AtomicI32 = AtomicI32::new(0);
/// First child forked after accept: it handles our connection (fork-per-connection servers).
pub static CHILD_PID: AtomicI32 = AtomicI32::new(0);
/// The first child the server reaped itself after accept (0: none yet) and its wait status.
/// Recorded even before `CHILD_PID` is known: a child can die, and the server's SIGCHLD handler
/// reap it, before `fork()` has returned its pid to us.
pub static REAPED_PID: AtomicI32 = AtomicI32::new(0);
pub static REAPED_STATUS: AtomicI32 = AtomicI32::new(0);
/// True in a process the server forked after accept (that process never ends the run itself).
pub static IN_SERVER_CHILD: AtomicBool = AtomicBool::new(false);

pub struct Config {
    pub debug: bool,
    /// Copy the reply to stdout.
    pub output: bool,
    /// Fd that gets one byte once the server listens.
    pub status_fd: Option<i32>,
    /// `SOCKFUZZ_IDLE=MS`: end a run whose server has sat idle with the connection open for MS
    /// milliseconds (`idle`); unset: never.
    pub idle: Option<std::time::Duration>,
    /// `SOCKFUZZ_EOF_SPIN=0`: a server that keeps reading end-of-file is left to spin (triage
    /// takes its call stack), not ended with [`crate::EXIT_EOF_SPIN`].
    pub eof_spin: bool,
    /// `SOCKFUZZ_PERSISTENT=N`: serve up to N test cases per process (`persist`); 0 or 1: one.
    pub persistent: u32,
    /// Upper bound on waiting for the server to go idle after it closed the connection.
    pub settle_ms: u64,
    /// `SOCKFUZZ_ROOT`: the server's web root; `None` turns the path-traversal oracle off.
    pub root: Option<crate::paths::Root>,
    /// `SOCKFUZZ_INPUT_FILE`: the test case, when it does not come from the fuzzer's shared
    /// memory; unset: stdin.
    pub input_file: Option<std::path::PathBuf>,
    /// `SOCKFUZZ_FINDING_FILE`: where a path-traversal finding is described.
    pub finding_file: Option<std::ffi::CString>,
    /// `SOCKFUZZ_ERROR_FILE`: where the reason is written when the server cannot be driven.
    pub error_file: Option<std::path::PathBuf>,
}

/// Read from the environment on first use (at the first `listen()`, never before).
pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Config {
            debug: var(env::name(env::DEBUG)).is_some_and(|v| v != "0"),
            output: var(env::name(env::OUTPUT)).is_none_or(|v| v != "0"),
            idle: var(env::name(env::IDLE)).and_then(|v| v.parse().ok()).map(std::time::Duration::from_millis),
            eof_spin: var(env::name(env::EOF_SPIN)).is_none_or(|v| v != "0"),
            status_fd: var(env::name(env::STATUS_FD)).and_then(|v| v.parse().ok()),
            persistent: var(env::name(env::PERSISTENT)).and_then(|v| v.parse().ok()).unwrap_or(0),
            settle_ms: var(env::name(env::SETTLE_MS)).and_then(|v| v.parse().ok()).unwrap_or(200),
            root: std::env::var_os(env::name(env::ROOT)).filter(|v| !v.is_empty()).map(|v| crate::paths::Root::new(&v)),
            input_file: std::env::var_os(env::name(env::INPUT_FILE)).filter(|v| !v.is_empty()).map(Into::into),
            error_file: std::env::var_os(env::name(env::ERROR_FILE)).filter(|v| !v.is_empty()).map(Into::into),
            finding_file: std::env::var_os(env::name(env::FINDING_FILE))
                .filter(|v| !v.is_empty())
                .and_then(|v| std::ffi::CString::new(v.into_encoded_bytes()).ok()),
        }
    })
}
