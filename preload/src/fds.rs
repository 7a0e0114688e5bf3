//! Our own file descriptors in the server's process (the client's socket, the wake-up eventfd,
//! a child's pidfd): kept at higher numbers than the server's, and out of its reach. A
//! server that closes every descriptor after it listens (or `dup2`s over one) would otherwise
//! cut the run's connection from under it: `close`, `close_range` and `closefrom` skip ours,
//! and `dup2`/`dup3` onto one of ours are refused.
//!
//! The same goes, until the server listens, for the descriptors the fuzzer handed down: the fork
//! server's pipes (198, 199) and `fuzzer run`'s status pipe. A server that turns itself into a
//! daemon closes every descriptor before it listens, and the fork server starts at `listen`.

use crate::real;
use contract::env;
use std::sync::atomic::AtomicI32;
use std::sync::atomic::Ordering::SeqCst;

const SLOTS: usize = 8;
static OURS: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
/// Descriptors inherited from the fuzzer, protected until the first `listen`.
static INHERITED: [AtomicI32; 3] = [const { AtomicI32::new(-1) }; 3];

/// At start-up: protect the fork server's pipes (when a fuzzer gave them) and the status pipe;
/// in persistent mode, for good, each run's link to the fork server (`persist`), which the fork
/// server opens at the fork.
pub fn keep_inherited() {
    if std::env::var_os(env::name(env::PERSISTENT)).is_some() {
        OURS[0].store(contract::fds::PERSIST_FD, SeqCst);
    }
    let forkserver = std::env::var_os(env::name(env::AFL_SHM_ID)).is_some();
    let status = std::env::var(env::name(env::STATUS_FD)).ok().and_then(|v| v.parse().ok());
    let fds = [forkserver.then_some(198), forkserver.then_some(199), status];
    for (slot, fd) in INHERITED.iter().zip(fds) {
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        if let Some(fd) = fd.filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0) {
            slot.store(fd, SeqCst);
        }
    }
}

/// Where ours go: above the few descriptors a server usually holds, below the 64 every
/// process's descriptor table starts with. Growing the table while other threads run waits for
/// an RCU grace period (10 ms a run on a thread-pool server, measured).
const HIGH: libc::c_int = 40;

/// Move `fd` (just made by us) up to [`HIGH`] or above, close-on-exec, and protect it; returns
/// the descriptor to use (`fd` itself if it could not be moved).
pub fn adopt(fd: libc::c_int) -> libc::c_int {
    if fd < 0 {
        return fd;
    }
    let mut fd = fd;
    if fd < HIGH {
        // SAFETY: F_DUPFD_CLOEXEC makes a copy of an open descriptor we own at >= HIGH.
        let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, HIGH) };
        if moved >= 0 {
            // SAFETY: the original, ours, is no longer needed.
            unsafe { real::close(fd) };
            fd = moved;
        }
    }
    // The first free slot takes it (there are more slots than we ever hold at once).
    let _ = OURS.iter().any(|s| s.compare_exchange(-1, fd, SeqCst, SeqCst).is_ok());
    fd
}

/// Close one of ours (by us) and stop protecting it.
pub fn release(fd: libc::c_int) {
    for slot in &OURS {
        let _ = slot.compare_exchange(fd, -1, SeqCst, SeqCst);
    }
    // SAFETY: `fd` is ours and not used after this.
    unsafe { real::close(fd) };
}

/// Whether `fd` is one of ours (or, before the server listens, one the fuzzer handed down).
pub fn ours(fd: libc::c_int) -> bool {
    fd >= 0 && protected().any(|s| s.load(SeqCst) == fd)
}

/// `dup2`/`dup3` onto `new`: refused (EBADF, as for a descriptor out of range) when it is one of
/// ours, which cannot be replaced.
pub fn refuse_dup_onto(new: libc::c_int) -> bool {
    if !ours(new) {
        return false;
    }
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = libc::EBADF };
    true
}

fn protected() -> impl Iterator<Item = &'static AtomicI32> {
    let inherited: &'static [AtomicI32] = if crate::state::TRIGGERED.load(SeqCst) { &[] } else { &INHERITED };
    OURS.iter().chain(inherited)
}

/// `close_range(first, last, flags)` over everything but ours: the real call on each gap.
/// Allocates nothing (a server may call it anywhere).
pub fn close_range_around(first: libc::c_uint, last: libc::c_uint, flags: libc::c_int) -> libc::c_int {
    let mut mine = [u32::MAX; SLOTS + 3];
    for (m, slot) in mine.iter_mut().zip(protected()) {
        let fd = slot.load(SeqCst);
        if fd >= 0 && (first..=last).contains(&(fd as u32)) {
            *m = fd as u32;
        }
    }
    mine.sort_unstable();
    let mut from = first;
    let mut result = 0;
    for &fd in mine.iter().take_while(|&&fd| fd != u32::MAX) {
        if fd > from {
            result = raw_close_range(from, fd - 1, flags);
        }
        from = fd + 1;
    }
    if from <= last {
        result = raw_close_range(from, last, flags);
    }
    result
}

fn raw_close_range(first: libc::c_uint, last: libc::c_uint, flags: libc::c_int) -> libc::c_int {
    // SAFETY: the close_range system call on a range of this process's descriptors.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) as libc::c_int }
}
