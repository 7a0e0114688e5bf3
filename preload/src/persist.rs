//! Persistent mode (`SOCKFUZZ_PERSISTENT=N`): one forked server serves up to N test cases, each
//! on a new connection, before the fork server forks a fresh one.
//!
//! A test case that ended normally (the server closed the connection and went idle; nothing it
//! forked for it still runs) leaves the process as it would a real client: the run's state is
//! reset, accepts parked since our connection are let go, and the client thread tells our
//! runtime's fork server so on their link (`link`) and waits there for the next test case. The
//! fork server tells the fuzzer "stopped", AFL++'s persistent-mode answer, which LibAFL's
//! fork-server executor takes. Any other end (a crash, a hang verdict, a timeout) ends the
//! process, so the next test case runs in a fresh one; the fuzzer re-runs such a result of a
//! reused process there before it believes it. A test case that cannot be driven in a reused
//! process exits with [`contract::verdicts::EXIT_UNSERVED`], never the set-up error that stops a campaign:
//! the fresh re-run says whether the server can be driven at all. The fuzzer's control page,
//! byte [`contract::control::FORK_MODE`], turns reuse off (its fallback when reused processes disagree too
//! often).

use crate::state::*;
use crate::{end, idle, memory_leaks, real, settle, shared};
use contract::fds::{DONE, GO, PERSIST_FD};
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::SeqCst;

/// Bumped when a new test case may be accepted: accepts parked since our connection wait on it.
static GENERATION: AtomicU32 = AtomicU32::new(0);

/// Whether test cases run persistently in this process.
fn on() -> bool {
    config().persistent > 1
}

/// How long a fresh process may take to wait for its first connection before its map is
/// cleared anyway.
const START_UP_LIMIT: std::time::Duration = std::time::Duration::from_millis(50);

/// As a test case begins (client thread): clear the coverage map, so that the server's start-up
/// since the fork (a fresh process's first test case) does not count, and arm the idle verdict.
/// In a fresh process, once the server waits for connections: its start-up runs on beside us,
/// and cutting it at a different place each time would tell crashes of one path apart (and
/// what it allocates or frees would count as the test case's, for `memory_leaks`).
pub fn begin() {
    REPLAYING.store(false, SeqCst);
    if !reused() && (on() || memory_leaks::on()) {
        settle::wait_idle(START_UP_LIMIT);
    }
    if on() {
        clear_map();
    }
    idle::arm(config().idle.is_some());
}

/// At the normal end of a test case (client thread): false when this process must end (not
/// persistent, fork mode asked for, N served, or something forked for it still runs); else
/// wait until the fork server hands us the next test case, and return true.
pub fn next() -> bool {
    let served = SERVED.load(SeqCst) + 1;
    if !on() || served >= config().persistent || control(contract::control::FORK_MODE) != 0 || shared::forked_alive() {
        return false;
    }
    SERVED.store(served, SeqCst);
    reset();
    let mut byte = DONE;
    // SAFETY: one byte from and into a local, on the link the fork server gave this process
    // (a closed or foreign descriptor only makes the calls fail). No signal reaches this thread.
    unsafe {
        if libc::send(PERSIST_FD, (&raw const byte).cast(), 1, libc::MSG_NOSIGNAL) != 1 {
            return false; // not our fork server's child: one test case
        }
        if real::read(PERSIST_FD, (&raw mut byte).cast(), 1) != 1 || byte != GO {
            end::exit(0); // the fork server is gone
        }
    }
    true
}

/// Before the finished test case is played once more in this process (`descriptor_leaks`
/// confirms a leak): the run is reset as for the next test case, without the fork server.
pub fn again() {
    REPLAYING.store(true, SeqCst);
    reset();
}

/// Forget the finished test case's connection, and let parked accepts take the next one.
fn reset() {
    ACCEPTED.store(false, SeqCst);
    CONN_FDS.clear();
    FD_OF_CONN.iter().for_each(|fd| fd.store(-1, SeqCst));
    EOF_READS.store(0, SeqCst);
    CHILD_PIDS.clear();
    REAPED_PIDS.clear();
    SENT.store(false, SeqCst);
    shared::reset();
    GENERATION.fetch_add(1, SeqCst);
    // SAFETY: FUTEX_WAKE on the address of a static u32; it touches no memory.
    unsafe {
        libc::syscall(libc::SYS_futex, GENERATION.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX)
    };
}

/// In an `accept` after our connection was taken (a server thread, maybe in a signal
/// handler): sleep until a new test case may be accepted. Returns at once outside persistent
/// mode after a signal, like `pause`.
pub fn park() {
    let seen = GENERATION.load(SeqCst);
    if !shared::get().taken.load(SeqCst) {
        return;
    }
    // SAFETY: FUTEX_WAIT reads the u32 at a valid static address and sleeps while it holds
    // `seen` (until a wake or a signal); async-signal-safe.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            GENERATION.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            seen,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

/// Our runtime's `sockfuzz_clear_map` (fuzzer-cc builds; others have none and are not run
/// persistently by the fuzzer).
fn clear_map() {
    static CLEAR: std::sync::OnceLock<Option<extern "C" fn()>> = std::sync::OnceLock::new();
    let clear = CLEAR.get_or_init(|| {
        // SAFETY: looking up a symbol by a NUL-terminated name.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"sockfuzz_clear_map".as_ptr()) };
        // SAFETY: our runtime's `void sockfuzz_clear_map(void)`.
        (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, extern "C" fn()>(f) })
    });
    if let Some(clear) = clear {
        clear();
    }
}
