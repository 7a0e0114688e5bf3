//! The server's child processes: what a `fork` is to the run (the connection's child, a
//! pre-forked worker, a daemon, one too many), and what becomes of them (reaped by the server,
//! SIGCHLD kept deliverable, `daemon` kept in the foreground).
//!
//! `fork` runs on any server thread; what runs in the child before it returns is
//! async-signal-safe (atomic stores and `prctl`): the child of a multithreaded process may only
//! do that.

use crate::log::debug;
use crate::state::*;
use crate::{idle, real, shared};
use libc::{c_int, pid_t};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

pub fn fork() -> pid_t {
    if !TRIGGERED.load(SeqCst) || !shared::in_run() {
        // SAFETY: fork has no preconditions; the real one, as the server asked.
        return unsafe { real::fork() };
    }
    if !shared::may_fork() {
        static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !TOLD.swap(true, SeqCst) {
            crate::log::error(format_args!(
                "the server forked {} processes in one run: its next fork() calls fail (EAGAIN), as under a process limit",
                shared::MAX_FORKS
            ));
        }
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() = libc::EAGAIN };
        return -1;
    }
    // The parent-death signal follows the thread that forked: only the run process's main
    // thread lives as long as the run. (A child of another process may be a daemon whose parent
    // is about to exit: `shared::die_with_run` sets it once it is ours.) The others die with
    // the run's process group, or are killed as it ends (`shared::kill_forked`).
    // SAFETY: gettid and getpid have no preconditions.
    let lives_as_long_as_the_run = unsafe { libc::gettid() == libc::getpid() } && shared::is_run_process();
    if IN_SERVER_CHILD.load(Relaxed) || !ACCEPTED.load(SeqCst) {
        // SAFETY: fork has no preconditions; the child runs only async-signal-safe code here.
        let pid = unsafe { real::fork() };
        if pid == 0 {
            idle::forked();
            if lives_as_long_as_the_run {
                // SAFETY: prctl with these arguments only sets this process's parent-death signal.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            }
        } else if pid > 0 {
            shared::note_forked(pid);
        }
        return pid;
    }
    FORKING.fetch_add(1, SeqCst);
    // SAFETY: fork has no preconditions; the child runs only async-signal-safe code here.
    let pid = unsafe { real::fork() };
    if pid == 0 {
        IN_SERVER_CHILD.store(true, SeqCst);
        // The client thread and the other server threads stay behind in the parent.
        WAKE_FD.store(-1, SeqCst);
        if lives_as_long_as_the_run {
            // SAFETY: prctl with these arguments only sets this process's parent-death signal.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        }
        return 0;
    }
    if pid > 0 {
        shared::note_forked(pid);
        if CHILD_PIDS.insert(pid).is_some() {
            idle::wake(); // to watch the child
        }
    }
    FORKING.fetch_sub(1, SeqCst);
    pid
}

/// The server may reap a connection's child itself: keep its status for the client thread.
/// Any child reaped after accept (its pid may not be listed yet) or the worker.
pub fn note_reaped(pid: pid_t, status: c_int) {
    let ours = ACCEPTED.load(SeqCst) || shared::worker() == Some(pid);
    if pid > 0 && ours && !REAPED_PIDS.contains(pid) {
        // Claim a slot (-1 is no child), then the status, then the pid the reader looks for.
        if let Some(slot) = REAPED_PIDS.insert(-1) {
            REAPED_STATUS[slot].store(status, SeqCst);
            REAPED_PIDS.set(slot, pid);
        }
    }
}

/// After a `waitid` that reaped a child (no `WNOWAIT`): as [`note_reaped`], from its `siginfo_t`.
pub fn note_waitid(info: &libc::siginfo_t) {
    // SAFETY: filled by a successful waitid, so it describes a child (or is zeroed for WNOHANG).
    let (pid, code, value) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    let status = if code == libc::CLD_EXITED { (value & 0xff) << 8 } else { value & 0x7f };
    note_reaped(pid, status);
}

/// `SIGCHLD = SIG_IGN` or `SA_NOCLDWAIT` make the kernel reap children, and a crashed child's
/// signal would be lost: keep the default disposition (which ignores SIGCHLD too). The handler
/// `signal(sig, handler)` installs instead of `handler`.
pub fn signal_handler(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig == libc::SIGCHLD && handler == libc::SIG_IGN {
        libc::SIG_DFL
    } else {
        handler
    }
}

/// As [`signal_handler`], for the new action of `sigaction(SIGCHLD, ...)`.
pub fn keep_sigchld(act: &mut libc::sigaction) {
    if act.sa_sigaction == libc::SIG_IGN {
        act.sa_sigaction = libc::SIG_DFL;
    }
    act.sa_flags &= !libc::SA_NOCLDWAIT;
}

/// `daemon(3)` stays in the foreground: the process the fuzzer started (or the run's) is the one
/// it follows, so it must be the one that serves. The working directory changes as asked; the
/// standard descriptors are kept (the server's messages stay visible). glibc's `daemon` forks
/// inside libc, where the `fork` hook cannot see it.
pub fn daemon(nochdir: c_int) -> c_int {
    debug!("daemon(): staying in the foreground");
    // SAFETY: a NUL-terminated literal.
    if nochdir == 0 && unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
        return -1;
    }
    0
}
