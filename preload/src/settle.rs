//! Ending a run: after the server closed our connections, decide how the process ends.
//!
//! Exiting as soon as EOF arrives would miss crashes in code that runs after `close()` (cleanup,
//! a double free), so we first wait for the child that handled the connection (fork-per-
//! connection servers) and then for every server thread to wait again (`idle`'s counters; for
//! a wait no hook sees, `/proc` says when all threads sleep).

use crate::end::{die_by, eof_spin};
use crate::log::debug;
use crate::state::*;
use crate::{fds, idle, real, shared};
use contract::verdicts::EXIT_EOF_SPIN;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// The server closed our connections: end the run by how their connections' processes ended
/// (a crash or an EOF spin ends the process here), and wait until the server is idle again.
/// Returns on a normal end, which the caller ends or follows with the next test case
/// (`persist::next`).
pub fn end_run() {
    wait_until(Duration::from_secs(1), || FORKING.load(SeqCst) == 0);
    let statuses = CHILD_PIDS.values().map(child_status);
    let worker = shared::worker().is_some() && CHILD_PIDS.is_empty();
    for status in statuses.chain(worker.then(worker_status)) {
        match status {
            Some(status) if libc::WIFSIGNALED(status) => reraise(libc::WTERMSIG(status)),
            Some(status) if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == EXIT_EOF_SPIN => eof_spin(),
            _ => {}
        }
    }
    let settle = Duration::from_millis(config().settle_ms);
    until_all_accepted(settle);
    wait_idle(settle);
}

/// Until the server has accepted every connection the test case opened (at most `limit`, or
/// until the listener is gone): one still in its accept queue is work to come, though the
/// server may look idle for a moment. An iterative server that reads a kept-open connection
/// accepts the next one (which we may have reset long before) only once that one is closed;
/// the counters can see it waiting in between, and the run then ended before the reply.
fn until_all_accepted(limit: Duration) {
    let shared = shared::get();
    let opened =
        shared.ports.iter().enumerate().filter(|(_, p)| p.load(SeqCst) != 0).fold(0u64, |m, (i, _)| m | 1 << i);
    // The accept hook wakes us.
    let accepted = || shared.claimed.load(SeqCst) & opened == opened || crate::connection::listener_gone();
    if !sleep_until(limit, accepted) {
        debug!("the server has not accepted every connection of the test case");
    }
}

/// The processes that handle our connections apart from the run's: the children forked for
/// them, or the pre-forked worker that accepted them.
pub fn connection_processes() -> impl Iterator<Item = libc::pid_t> {
    let worker = shared::worker().filter(|_| CHILD_PIDS.is_empty());
    CHILD_PIDS.values().chain(worker)
}

/// The wait status of connection process `child` if it has ended (without reaping it).
pub fn child_ended(child: libc::pid_t) -> Option<i32> {
    reaped(child).or_else(|| wait_child(child, libc::WNOHANG))
}

/// A pre-forked worker goes back to `accept` after closing our connection rather than exit:
/// wait (bounded) until it waits again or has ended, and say how it ended if it has. Only a
/// worker that is our child can be waited for; another's crash goes unseen.
fn worker_status() -> Option<i32> {
    let deadline = Instant::now() + Duration::from_millis(config().settle_ms);
    let wake = WAKE_FD.load(SeqCst);
    loop {
        if let Some(status) = shared::worker().and_then(child_ended) {
            return Some(status);
        }
        if shared::get().acceptor_waits.load(SeqCst) || Instant::now() >= deadline {
            return None;
        }
        sleep_on(wake);
    }
}

/// Whether a wait status is a child that died of a signal or spun on EOF.
pub fn failed(status: i32) -> bool {
    libc::WIFSIGNALED(status) || (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == EXIT_EOF_SPIN)
}

/// The status of `child` if the server reaped it itself.
fn reaped(child: libc::pid_t) -> Option<i32> {
    REAPED_PIDS.find(child).map(|slot| REAPED_STATUS[slot].load(SeqCst))
}

/// Wait status of the connection's child once it has ended, without reaping it (the server may
/// want to). None when, our connection closed, it waits for another connection or a signal:
/// a child that forgot to exit and went back to `accept`, or one left in `pause`. It is killed
/// with the run.
fn child_status(child: libc::pid_t) -> Option<i32> {
    // SAFETY: pidfd_open takes a pid and flags; -1 (an old kernel) only makes the poll below a
    // one-millisecond sleep.
    let pidfd = fds::adopt(unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0) } as libc::c_int);
    let ended = || -> Result<Option<i32>, ()> {
        // SAFETY: errno is this thread's; cleared so that a stale one is not read below.
        unsafe { *libc::__errno_location() = 0 };
        match wait_child(child, libc::WNOHANG) {
            Some(status) => Ok(Some(status)),
            None if std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) => Err(()),
            None => Ok(None),
        }
    };
    let status = loop {
        match ended() {
            Ok(Some(status)) => break Some(status),
            // The server reaped it first; our `waitpid` hook kept the status.
            Err(()) => {
                wait_until(Duration::from_secs(1), || reaped(child).is_some());
                break reaped(child);
            }
            Ok(None) => {}
        }
        // Waiting for good (or a zombie by now: look once more).
        if waits_for_another_connection(child) {
            break ended().ok().flatten();
        }
        let mut pfd = libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd (a negative fd only makes poll wait); our own poll, not the hook.
        unsafe { real::poll(&mut pfd, 1, 1) };
    };
    if pidfd >= 0 {
        fds::release(pidfd);
    }
    status
}

/// Every thread of process `pid` blocked in `accept`, `epoll_wait`, `pause` or `sigsuspend`
/// (`/proc/PID/task/TID/syscall`), seen twice with a yield between. Not `poll` or `read`: a
/// child may wait there for its own work (a CGI pipe) and crash after.
fn waits_for_another_connection(pid: libc::pid_t) -> bool {
    let all_wait = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
        let mut any = false;
        let all = tasks.flatten().all(|task| {
            any = true;
            let text = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
            let number = text.split_whitespace().next().and_then(|n| n.parse::<libc::c_long>().ok());
            number.is_some_and(|n| WAITS_FOR_ANOTHER_CONNECTION.contains(&n))
        });
        any && all
    };
    all_wait() && {
        std::thread::yield_now();
        all_wait()
    }
}

#[cfg(target_arch = "x86_64")]
const WAITS_FOR_ANOTHER_CONNECTION: [libc::c_long; 7] = [
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_pause,
    libc::SYS_rt_sigsuspend,
];
#[cfg(not(target_arch = "x86_64"))]
const WAITS_FOR_ANOTHER_CONNECTION: [libc::c_long; 5] =
    [libc::SYS_accept, libc::SYS_accept4, libc::SYS_epoll_pwait, libc::SYS_epoll_pwait2, libc::SYS_rt_sigsuspend];

fn wait_child(child: libc::pid_t, flags: i32) -> Option<i32> {
    // SAFETY: siginfo_t is plain data; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let options = libc::WEXITED | libc::WNOWAIT | flags;
    // SAFETY: `info` is valid for writes; WNOWAIT leaves the child for the server to reap.
    if unsafe { real::waitid(libc::P_PID, child as libc::id_t, &mut info, options) } != 0 {
        return None;
    }
    // SAFETY: waitid succeeded; a zero si_pid means "not exited yet" (WNOHANG).
    let (pid, code, value) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    match (pid, code) {
        (0, _) => None,
        (_, libc::CLD_EXITED) => Some((value & 0xff) << 8),
        _ => Some(value & 0x7f),
    }
}

/// Die from `sig` ourselves, so the fuzzer sees the child's crash as this process's.
fn reraise(sig: i32) -> ! {
    debug!("the server's child died from signal {sig}; re-raising it");
    die_by(sig)
}

/// Wait (at most `limit`) until the server is back in accept/poll/epoll_wait or parked, and
/// whatever ran after `close()` has run: every server thread in a counted wait, woken by the
/// last one; after a millisecond without that (a thread waits where no hook sees it), every
/// other thread seen asleep in `/proc` twice in a row.
pub fn wait_idle(limit: Duration) {
    let start = Instant::now();
    let deadline = start + limit;
    let wake = WAKE_FD.load(SeqCst);
    while Instant::now() < deadline {
        if idle::everyone_waits() || (start.elapsed() >= Duration::from_millis(1) && others_sleep()) {
            // Asked after the threads were seen asleep: a thread that hit an ASan error sleeps
            // while its report is symbolized (a pipe to llvm-symbolizer), and the report, begun
            // before, ends the process.
            let until = Instant::now() + ASAN_REPORT_LIMIT;
            while asan_reporting() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            return;
        }
        sleep_on(wake);
    }
}

/// Before a leak oracle acts on what a test case seems to have left: wait (at most the settle
/// time) until `/proc` says every other server thread sleeps. `wait_idle` trusts the hooks'
/// counters, which count a thread as it enters a wait, and a wait entered with an event pending
/// returns at once: an epoll server whose client reset its connection is about to free that
/// connection's state, which only the kernel's epoll entry points to (LeakSanitizer would call
/// it a leak), and to close its descriptor.
pub fn until_asleep() {
    sleep_until(Duration::from_millis(config().settle_ms), others_sleep);
}

/// Sleep (on the wake eventfd, a millisecond at most each time) until `done` holds: true, or
/// false once `limit` has passed without it.
fn sleep_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let wake = WAKE_FD.load(SeqCst);
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep_on(wake);
    }
}

/// How long an ASan report may take to print (and symbolize) before the process dies.
const ASAN_REPORT_LIMIT: Duration = Duration::from_secs(10);

/// Whether AddressSanitizer has found an error and is reporting it (it ends the process after).
fn asan_reporting() -> bool {
    type ReportPresent = unsafe extern "C" fn() -> libc::c_int;
    static PRESENT: std::sync::OnceLock<Option<ReportPresent>> = std::sync::OnceLock::new();
    let present = PRESENT.get_or_init(|| {
        // SAFETY: a NUL-terminated name; dlsym only looks it up.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__asan_report_present".as_ptr()) };
        // SAFETY: ASan's `int __asan_report_present(void)` has this signature.
        (!f.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, ReportPresent>(f) })
    });
    // SAFETY: ASan's own function; it only reads whether an error report was begun.
    present.is_some_and(|f| unsafe { f() } != 0)
}

/// Sleep until the eventfd `wake` is written to, or a millisecond has passed.
fn sleep_on(wake: libc::c_int) {
    let mut pfd = libc::pollfd { fd: wake, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd (a negative fd only makes poll wait); our own poll, not the hook.
    if unsafe { real::poll(&mut pfd, 1, 1) } > 0 {
        let mut count = 0u64;
        // SAFETY: reads the eventfd's 8-byte counter into a local.
        unsafe { real::read(wake, (&raw mut count).cast(), 8) };
    }
}

/// Every thread but the calling one asleep (`/proc`), and those of the processes that handle our
/// connections (a connection's child, a pre-forked worker), seen twice with a yield between.
/// A connection's child that has ended is asleep (its `/proc` is gone, or it is a zombie).
pub fn others_sleep() -> bool {
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    let all_asleep =
        || others_asleep("self", me) && connection_processes().all(|pid| others_asleep(&pid.to_string(), me));
    all_asleep() && {
        std::thread::yield_now();
        all_asleep()
    }
}

/// True when no thread of `process` (a pid, or "self") but `me` is running or runnable (`R`),
/// in uninterruptible sleep (`D`) or stopped (`t`, `T`).
fn others_asleep(process: &str, me: libc::pid_t) -> bool {
    other_threads(process, me).all(|(_, dir)| {
        let Ok(stat) = std::fs::read(dir.join("stat")) else { return true };
        // Format: "tid (comm) S ..."; comm may contain spaces and parentheses. A thread stopped
        // by a debugger (`t`: gdb took its signal, a crash it is about to show) is not done.
        let state = stat.iter().rposition(|&b| b == b')').and_then(|i| stat.get(i + 2));
        !matches!(state, Some(b'R' | b'D' | b't' | b'T'))
    })
}

/// The threads of `process` (a pid, or "self") but `me`: each one's id and `/proc` folder.
pub fn other_threads(process: &str, me: libc::pid_t) -> impl Iterator<Item = (libc::pid_t, std::path::PathBuf)> {
    let tasks = std::fs::read_dir(format!("/proc/{process}/task")).into_iter().flatten().flatten();
    tasks.filter_map(move |task| {
        let tid = task.file_name().to_str()?.parse::<libc::pid_t>().ok()?;
        (tid != me).then(|| (tid, task.path()))
    })
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() && Instant::now() < deadline {
        std::thread::yield_now();
    }
}
