//! Which server threads wait, and the idle verdict built on it.
//!
//! The hooks of the blocking waits (`accept`, `poll`, `select`, `epoll_wait`, condition
//! variables, semaphores, `pause`, `pthread_join`, ...) count the server threads inside one
//! (`Waiting`), and `pthread_create`/`pthread_exit` count the threads alive. When every server
//! thread waits, nothing of the server runs: after a closed connection the run can end at once
//! (`settle`), and with our connection still open, whole input sent and no connection child
//! running, nothing can close it any more: the *idle verdict*, exit status [`contract::verdicts::EXIT_IDLE`]. The
//! client thread makes the verdict, woken through an eventfd by the thread that waited last,
//! after confirming in `/proc` that the others really sleep (a wait entered with an event
//! pending returns at once). A wait with a timeout under [`SHORT_WAIT_MS`] does not count: the
//! server means to act soon. A longer timer (closing idle connections after a while) does count:
//! the fuzzer re-runs a new hang candidate "patiently" (control page, byte 0), without verdict.
//! When every thread waits *without* a timeout, no timer was ever armed and no child process
//! runs, nothing at all can wake the server: the verdict says so ([`contract::verdicts::EXIT_STUCK`]) and the
//! fuzzer saves the hang without that re-run (`stuck`).
//!
//! Counters only, no locks: hooks run on any server thread, also inside signal handlers.

use crate::state::*;
use crate::{lsan, shared};
use std::sync::atomic::Ordering::SeqCst;

/// Waits that time out sooner than this are not idleness.
pub const SHORT_WAIT_MS: i64 = 100;

/// At the start of a run: whether it may end idle (read now, the fuzzer sets it per run).
pub fn arm(enabled: bool) {
    ON.store(enabled && control(contract::control::PATIENT) == 0, SeqCst);
}

/// A counted wait of the calling thread, for as long as the value lives: (counted, forever).
pub struct Waiting(bool, bool);

impl Waiting {
    /// Count the calling thread as waiting, for a wait of `ms` milliseconds (negative: no
    /// timeout), if it is long enough and this is a run's server thread; wakes the client thread
    /// if that makes every thread wait.
    pub fn enter(ms: i64) -> Waiting {
        // Also before the trigger (pool threads wait for work before the server listens); not in
        // a child forked for the connection, whose counters are a stale copy.
        if TRIGGERED.load(SeqCst) {
            lsan::start_up_over();
        }
        let counted = long(ms) && !IN_SERVER_CHILD.load(SeqCst);
        let forever = counted && ms < 0;
        if forever {
            FOREVER.fetch_add(1, SeqCst);
        }
        if counted {
            WAITING.fetch_add(1, SeqCst);
            if everyone_waits() {
                wake();
                note_worker_waits(true);
            }
        }
        Waiting(counted, forever)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.1 {
            FOREVER.fetch_sub(1, SeqCst);
        }
        if self.0 {
            WAITING.fetch_sub(1, SeqCst);
            note_worker_waits(false);
        }
    }
}

/// In a process the server forked before accepting our connection (a pre-forked worker): only
/// the thread that forked lives on, and it is not waiting.
pub fn forked() {
    LIVE.store(1, SeqCst);
    WAITING.store(0, SeqCst);
    FOREVER.store(0, SeqCst);
}

/// Whether a wait of `ms` milliseconds (negative: forever) counts.
fn long(ms: i64) -> bool {
    !(0..SHORT_WAIT_MS).contains(&ms)
}

/// Milliseconds of a relative timeout (NULL: forever).
pub fn ts_ms(ts: *const libc::timespec) -> i64 {
    if ts.is_null() {
        return -1;
    }
    // SAFETY: a non-null timeout argument points to the caller's timespec.
    let ts = unsafe { *ts };
    ts.tv_sec.saturating_mul(1000).saturating_add(ts.tv_nsec / 1_000_000)
}

/// Milliseconds of a `select` timeout (NULL: forever).
pub fn tv_ms(tv: *const libc::timeval) -> i64 {
    if tv.is_null() {
        return -1;
    }
    // SAFETY: a non-null timeout points to the caller's timeval.
    let tv = unsafe { *tv };
    tv.tv_sec.saturating_mul(1000).saturating_add(tv.tv_usec / 1000)
}

/// Milliseconds until an absolute CLOCK_REALTIME deadline (a deadline on another clock
/// reads as long past: not counted, the safe side).
pub fn until_ms(abstime: *const libc::timespec) -> i64 {
    if abstime.is_null() {
        return -1;
    }
    // SAFETY: zeroed timespec is valid; clock_gettime fills it.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `now` is writable; async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    // SAFETY: non-null, the caller's timespec.
    let end = unsafe { *abstime };
    ((end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1_000_000).max(0)
}

/// Every server thread of this process is in a counted wait.
pub fn everyone_waits() -> bool {
    WAITING.load(SeqCst) >= LIVE.load(SeqCst)
}

/// In the process that holds our connection, when it is a worker: note whether all its threads
/// wait, and wake the client thread (in the run's process) to look.
fn note_worker_waits(waits: bool) {
    // This process accepted it (a process-local flag) and the run's process did not.
    if ACCEPTED.load(SeqCst) && shared::worker().is_some() {
        shared::get().acceptor_waits.store(waits, SeqCst);
        if waits {
            wake();
        }
    }
}

/// Wake the client thread to look again. Async-signal-safe (one `write`).
pub fn wake() {
    let fd = WAKE_FD.load(SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local; an eventfd that was closed under us only fails.
        unsafe { crate::real::write(fd, (&raw const one).cast(), 8) };
    }
}

/// The verdict's condition, as the counters see it: the test case is in, one of our connections
/// is still open in the server, no connection child runs, and every server thread waits (of the
/// worker that accepted them, when a pre-forked worker did).
pub fn looks_idle(child_running: bool) -> bool {
    ON.load(SeqCst) && SENT.load(SeqCst) && server_waits(child_running)
}

/// As [`looks_idle`], whatever the verdict's switch and however much was sent: the server holds
/// one of our connections open and waits (the client thread's cue to go on, `play`).
pub fn server_waits(child_running: bool) -> bool {
    if child_running {
        return false;
    }
    let shared = shared::get();
    match shared::worker() {
        Some(_) => shared.open.load(SeqCst) > 0 && shared.acceptor_waits.load(SeqCst),
        None => ACCEPTED.load(SeqCst) && !CONN_FDS.is_empty() && everyone_waits(),
    }
}

/// Nothing can ever wake the server: every server thread waits without a timeout, no timer was
/// armed, and it has no child process (one could exit and signal it). A zombie child counts as
/// one too, to stay on the safe side. Never said of a pre-forked worker, whose threads and
/// timers this process does not see.
pub fn stuck() -> bool {
    if shared::worker().is_some() || FOREVER.load(SeqCst) < LIVE.load(SeqCst) || TIMER_ARMED.load(SeqCst) {
        return false;
    }
    // SAFETY: siginfo_t is plain data, valid when zeroed; WNOWAIT leaves any child unreaped.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: `info` is writable; the real waitid, not the hook that notes reaped children.
    unsafe { crate::real::waitid(libc::P_ALL, 0, &mut info, flags) < 0 }
}

/// Note that the server armed a timer of `value` (zero disarms).
pub fn timer(value: libc::timespec) {
    if value.tv_sec != 0 || value.tv_nsec != 0 {
        TIMER_ARMED.store(true, SeqCst);
    }
}
