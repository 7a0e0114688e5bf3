//! How the process ends: an exit status or a signal the fuzzer reads as the run's verdict, after
//! killing what the run forked. Below every policy that ends a run (`settle`, `persist`,
//! `client`, `paths`, the EOF-spin count of `connection`), so none has to call another to end it.

use crate::log::debug;
use crate::state::{config, reused, REPLAYING};
use crate::{real, shared};
use contract::verdicts::{EXIT_EOF_SPIN, EXIT_SETUP, EXIT_UNSERVED};
use std::sync::atomic::Ordering::SeqCst;

/// End the process now, skipping atexit handlers and destructors: the server's other threads
/// are still running and must not see their globals torn down under them. The processes the
/// run forked end with it.
pub fn exit(status: i32) -> ! {
    shared::kill_forked();
    // SAFETY: _exit has no preconditions (the real one: ours would look at the run first).
    unsafe { real::_exit(status) }
}

/// sockfuzz cannot drive the server: say why on stderr and in `SOCKFUZZ_ERROR_FILE` (the
/// fuzzer's runs have no stderr, and it stops the campaign with this), and end the run.
pub fn cannot_drive(why: std::fmt::Arguments) -> ! {
    if REPLAYING.load(SeqCst) {
        // The test case itself ended normally; only the replay of a leak's check failed.
        debug!("replaying the test case: {why}");
        exit(0);
    }
    if reused() {
        debug!("{why}");
        exit(EXIT_UNSERVED);
    }
    crate::log::error(why);
    if let Some(file) = &config().error_file {
        let _ = std::fs::write(file, format!("{why}\n"));
    }
    exit(EXIT_SETUP)
}

/// The server read EOF over and over on our connection: report a hang at once.
pub fn eof_spin() -> ! {
    debug!("server keeps reading end-of-file without closing the connection: hang (EOF spin)");
    exit(EXIT_EOF_SPIN)
}

/// End the process by `sig`, whatever the server set up for it (handler, mask): the fuzzer
/// tells a run's outcome by the signal. No core dump; no allocation (hooks call this).
pub fn die_by(sig: i32) -> ! {
    shared::kill_forked();
    // SAFETY: plain libc calls on local, initialised data.
    unsafe {
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        real::sigaction(sig, &dfl, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    exit(128 + sig)
}
