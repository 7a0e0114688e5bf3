//! The libc functions we override: only the exported hook table. Each hook is a thin dispatch
//! to the module that owns its policy (`trigger`, `threads`, `idle`, `connection`, `fds`,
//! `children`, `paths`, `netns`) around the real function (`real`), and is transparent until the
//! first `listen()` (processes that never listen, like `make` or a shell, must not notice us),
//! but for `getaddrinfo` in the network namespace we made.
//!
//! Every hook is an `unsafe extern "C" fn` whose safety contract is the C function's own: its
//! arguments are passed on to the real function unchanged (but `getaddrinfo`'s hints inside our
//! namespace), and a hook reads a pointer argument only as that function would.

use crate::idle::{self, Waiting};
use crate::paths::{self, follows, follows_at, Access::*};
use crate::state::{LISTEN_FD, TRIGGERED};
use crate::{children, client, connection, fds, netns, real, threads, trigger};
use libc::{c_char, c_int, c_uint, c_void, pid_t, size_t, sockaddr, socklen_t, ssize_t, AT_FDCWD, FILE};
use std::sync::atomic::Ordering::Relaxed;

/// Listening sockets get SO_REUSEADDR (`trigger`).
///
/// # Safety
///
/// `bind`'s own contract: `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    trigger::reuse_addr(fd);
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::bind(fd, addr, len) }
}

/// Inside the network namespace we made, `AI_ADDRCONFIG` is decided with the host's addresses,
/// so the server starts as it would there (`netns`).
///
/// # Safety
///
/// `getaddrinfo`'s own contract: `node` and `service` NULL or C strings, `hints` NULL or
/// readable, `res` writable.
#[no_mangle]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const libc::addrinfo,
    res: *mut *mut libc::addrinfo,
) -> c_int {
    // SAFETY: `hints` is the caller's, NULL or readable.
    let host = unsafe { netns::host_hints(hints) };
    let hints = host.as_ref().map_or(hints, |h| h as *const libc::addrinfo);
    // SAFETY: the caller's arguments, but `hints` perhaps our copy, which outlives the call.
    unsafe { real::getaddrinfo(node, service, hints, res) }
}

/// The trigger: the first `listen` on a TCP socket starts the run (`trigger`).
///
/// # Safety
///
/// None beyond `listen`'s (integers only).
#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::listen(fd, backlog) };
    if r == 0 {
        trigger::listened(fd);
    }
    r
}

/// Every server thread is counted alive while it runs (`threads`). A deferred fork server
/// starts first: threads do not survive `fork`.
///
/// # Safety
///
/// `pthread_create`'s own contract.
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    trigger::start_forkserver();
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { threads::create(thread, attr, start, arg) }
}

/// A server's main thread may end this way and leave its threads serving (`threads`).
///
/// # Safety
///
/// `pthread_exit`'s own contract.
#[no_mangle]
pub unsafe extern "C" fn pthread_exit(value: *mut c_void) -> ! {
    threads::ends();
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::pthread_exit(value) }
}

/// The blocking waits, counted while they last (`idle`): `$ms` is the timeout in milliseconds,
/// negative for none.
macro_rules! wait_hooks {
    ($( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $ms:expr; )*) => {$(
        /// # Safety
        ///
        /// The C function's own contract (this hook reads only the timeout, as it does).
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            let _waiting = Waiting::enter($ms);
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { real::$name($($arg),*) }
        }
    )*};
}

wait_hooks! {
    fn poll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int) -> c_int = i64::from(timeout);
    fn ppoll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: *const libc::timespec, mask: *const libc::sigset_t)
        -> c_int = idle::ts_ms(timeout);
    fn select(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, timeout: *mut libc::timeval)
        -> c_int = idle::tv_ms(timeout);
    fn pselect(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set,
        timeout: *const libc::timespec, mask: *const libc::sigset_t) -> c_int = idle::ts_ms(timeout);
    fn epoll_wait(epfd: c_int, events: *mut libc::epoll_event, max: c_int, timeout: c_int) -> c_int
        = i64::from(timeout);
    fn epoll_pwait(epfd: c_int, events: *mut libc::epoll_event, max: c_int, timeout: c_int,
        mask: *const libc::sigset_t) -> c_int = i64::from(timeout);
    fn pthread_cond_wait(cond: *mut libc::pthread_cond_t, mutex: *mut libc::pthread_mutex_t) -> c_int = -1;
    fn pthread_cond_timedwait(cond: *mut libc::pthread_cond_t, mutex: *mut libc::pthread_mutex_t,
        abstime: *const libc::timespec) -> c_int = idle::until_ms(abstime);
    fn sem_wait(sem: *mut libc::sem_t) -> c_int = -1;
    fn sem_timedwait(sem: *mut libc::sem_t, abstime: *const libc::timespec) -> c_int = idle::until_ms(abstime);
    fn pthread_join(thread: libc::pthread_t, value: *mut *mut c_void) -> c_int = -1;
    fn pause() -> c_int = -1;
    fn sigsuspend(mask: *const libc::sigset_t) -> c_int = -1;
    fn sigwait(set: *const libc::sigset_t, sig: *mut c_int) -> c_int = -1;
}

/// Timers: a server that armed one may act later on its own, so an idle run of it is never
/// hung for certain (`idle::stuck`).
///
/// # Safety
///
/// None beyond `alarm`'s (integers only).
#[no_mangle]
pub unsafe extern "C" fn alarm(secs: libc::c_uint) -> libc::c_uint {
    idle::timer(libc::timespec { tv_sec: secs.into(), tv_nsec: 0 });
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { real::alarm(secs) }
}

/// # Safety
///
/// None beyond `ualarm`'s (integers only).
#[no_mangle]
pub unsafe extern "C" fn ualarm(usecs: libc::useconds_t, interval: libc::useconds_t) -> libc::useconds_t {
    idle::timer(libc::timespec { tv_sec: 0, tv_nsec: i64::from(usecs) * 1000 });
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { real::ualarm(usecs, interval) }
}

/// # Safety
///
/// `setitimer`'s own contract: `new` is NULL or readable, `old` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn setitimer(which: c_int, new: *const libc::itimerval, old: *mut libc::itimerval) -> c_int {
    if !new.is_null() {
        // SAFETY: a non-null new value points to the caller's itimerval.
        let v = unsafe { (*new).it_value };
        idle::timer(libc::timespec { tv_sec: v.tv_sec, tv_nsec: v.tv_usec * 1000 });
    }
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { real::setitimer(which, new, old) }
}

/// # Safety
///
/// `timer_settime`'s own contract: `new` is NULL or readable, `old` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn timer_settime(
    timer: libc::timer_t,
    flags: c_int,
    new: *const libc::itimerspec,
    old: *mut libc::itimerspec,
) -> c_int {
    // SAFETY: `new` is the caller's (NULL or readable).
    unsafe { note_itimerspec(new) };
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { real::timer_settime(timer, flags, new, old) }
}

/// # Safety
///
/// `timerfd_settime`'s own contract: `new` is NULL or readable, `old` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn timerfd_settime(
    fd: c_int,
    flags: c_int,
    new: *const libc::itimerspec,
    old: *mut libc::itimerspec,
) -> c_int {
    // SAFETY: `new` is the caller's (NULL or readable).
    unsafe { note_itimerspec(new) };
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { real::timerfd_settime(fd, flags, new, old) }
}

/// The new value of a POSIX timer or a timerfd, if one is set (NULL is only a read).
///
/// # Safety
///
/// `new` is NULL or points to a readable `itimerspec`.
unsafe fn note_itimerspec(new: *const libc::itimerspec) {
    if !new.is_null() {
        // SAFETY: a non-null new value points to the caller's itimerspec.
        idle::timer(unsafe { (*new).it_value });
    }
}

/// Exactly one connection per test case: ours (`connection`).
///
/// # Safety
///
/// `accept`'s own contract: `addr` and `len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    connection::accept(fd, || unsafe { real::accept(fd, addr, len) })
}

/// # Safety
///
/// `accept4`'s own contract: `addr` and `len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    connection::accept(fd, || unsafe { real::accept4(fd, addr, len, flags) })
}

/// Reads of our connection are counted for the EOF spin (`connection`).
///
/// # Safety
///
/// `read`'s own contract: `buf` has room for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::read(fd, buf, n) };
    connection::note_read(fd, n, r);
    r
}

/// # Safety
///
/// `recv`'s own contract: `buf` has room for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::recv(fd, buf, n, flags) };
    connection::note_read(fd, n, r);
    r
}

/// # Safety
///
/// `recvfrom`'s own contract: `buf` has room for `n` bytes; `addr` and `len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::recvfrom(fd, buf, n, flags, addr, len) };
    connection::note_read(fd, n, r);
    r
}

/// # Safety
///
/// `recvmsg`'s own contract: `msg` is a valid `msghdr` with `msg_iovlen` iovecs.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::recvmsg(fd, msg, flags) };
    // SAFETY: the caller passed a valid msghdr (the real recvmsg has just used it).
    let requested = unsafe { (0..(*msg).msg_iovlen).map(|i| (*(*msg).msg_iov.add(i)).iov_len).sum() };
    connection::note_read(fd, requested, r);
    r
}

/// Our own descriptors (`fds`) stay open whatever the server closes: the call pretends.
///
/// # Safety
///
/// None beyond `close`'s (an integer only).
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if fds::ours(fd) {
        return 0;
    }
    connection::closed(fd);
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::close(fd) }
}

/// # Safety
///
/// None beyond `close_range`'s (integers only).
#[no_mangle]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let listener = LISTEN_FD.load(Relaxed);
    if listener >= 0
        && (first..=last).contains(&(listener as c_uint))
        && flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0
    {
        connection::closed(listener);
    }
    fds::close_range_around(first, last, flags)
}

/// # Safety
///
/// None beyond `closefrom`'s (an integer only).
#[no_mangle]
pub unsafe extern "C" fn closefrom(low: c_int) {
    // SAFETY: our own hook, with closefrom's meaning.
    unsafe { close_range(low.max(0) as c_uint, c_uint::MAX, 0) };
}

/// A descriptor of ours cannot be replaced (`fds`).
///
/// # Safety
///
/// None beyond `dup2`'s (integers only).
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if fds::refuse_dup_onto(new) {
        return -1;
    }
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::dup2(old, new) }
}

/// # Safety
///
/// None beyond `dup3`'s (integers only).
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if fds::refuse_dup_onto(new) {
        return -1;
    }
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::dup3(old, new, flags) }
}

/// A process that leaves the run by `_exit` (as a daemon's parent does) is seen like one that
/// calls `exit` (`client::exited_early`). `_exit` may be called in a signal handler: what that
/// does is async-signal-safe (getpid, open/read of `/proc`, poll, pause) except the message of
/// a run that cannot be driven, which allocates; it is written only when the run's process leaves before
/// anything accepted the connection with no process of its own left, and the process ends then.
///
/// # Safety
///
/// None beyond `_exit`'s (an integer only).
#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    if TRIGGERED.load(Relaxed) {
        client::exited_early();
    }
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::_exit(status) }
}

/// # Safety
///
/// None beyond `_Exit`'s (an integer only).
#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { _exit(status) }
}

/// `daemon(3)` stays in the foreground (`children`).
///
/// # Safety
///
/// None beyond `daemon`'s (integers only).
#[no_mangle]
pub unsafe extern "C" fn daemon(nochdir: c_int, _noclose: c_int) -> c_int {
    children::daemon(nochdir)
}

/// What a fork is to the run: the connection's child, a worker, one too many (`children`).
///
/// # Safety
///
/// None beyond `fork`'s.
#[no_mangle]
pub unsafe extern "C" fn fork() -> pid_t {
    children::fork()
}

/// # Safety
///
/// `waitpid`'s own contract: `status` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { wait4(pid, status, options, std::ptr::null_mut()) }
}

/// # Safety
///
/// `wait`'s own contract: `status` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wait(status: *mut c_int) -> pid_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { wait4(-1, status, 0, std::ptr::null_mut()) }
}

/// # Safety
///
/// `wait3`'s own contract: `status` and `usage` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wait3(status: *mut c_int, options: c_int, usage: *mut libc::rusage) -> pid_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { wait4(-1, status, options, usage) }
}

/// The server may reap the connection's child itself: its status is kept (`children`).
///
/// # Safety
///
/// `wait4`'s own contract: `status` and `usage` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn wait4(pid: pid_t, status: *mut c_int, options: c_int, usage: *mut libc::rusage) -> pid_t {
    let mut st: c_int = 0;
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::wait4(pid, &mut st, options, usage) };
    if r > 0 {
        children::note_reaped(r, st);
        if !status.is_null() {
            // SAFETY: the caller gave a valid (non-null) status pointer.
            unsafe { *status = st };
        }
    }
    r
}

/// # Safety
///
/// `waitid`'s own contract: `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn waitid(
    idtype: libc::idtype_t,
    id: libc::id_t,
    info: *mut libc::siginfo_t,
    options: c_int,
) -> c_int {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::waitid(idtype, id, info, options) };
    if r == 0 && !info.is_null() && options & libc::WNOWAIT == 0 {
        // SAFETY: waitid succeeded and filled the caller's non-null `*info`.
        children::note_waitid(unsafe { &*info });
    }
    r
}

/// A crashed child's SIGCHLD must not be lost (`children`).
///
/// # Safety
///
/// `signal`'s own contract: `handler` is a valid disposition.
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    let handler = children::signal_handler(sig, handler);
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::signal(sig, handler) }
}

/// # Safety
///
/// `sigaction`'s own contract: `act` is NULL or readable, `old` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    if sig != libc::SIGCHLD || act.is_null() {
        // SAFETY: the caller's own arguments, passed on to the function it called.
        return unsafe { real::sigaction(sig, act, old) };
    }
    // SAFETY: `act` is non-null and points to the caller's sigaction.
    let mut act = unsafe { *act };
    children::keep_sigchld(&mut act);
    // SAFETY: a copy of the caller's sigaction (still valid), and the caller's `old`.
    unsafe { real::sigaction(sig, &act, old) }
}

/// Path functions: the path is checked (`paths`) before the real call, which gets the same
/// arguments. `(dirfd, path, follow, access)` say how to read the arguments.
macro_rules! path_hooks {
    ($( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty
        = ($dirfd:expr, $path:ident, $follow:expr, $access:expr); )*) => {$(
        /// # Safety
        ///
        /// The C function's own contract (this hook reads only the path, as a C string).
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: `$path` is the caller's path argument (NULL or a C string), `$dirfd` its directory.
            unsafe { paths::check($dirfd, $path, $follow, $access) };
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { real::$name($($arg),*) }
        }
    )*};
}

// `open`, `open64`, `openat` and `openat64` are variadic in C, which stable Rust cannot define:
// `mode` is a plain last parameter. On x86_64 (and aarch64) Linux it arrives in the register a
// variadic argument would, holding garbage when the caller passed none, and the real function
// (called variadically, see `real`) only reads it with O_CREAT or O_TMPFILE.
path_hooks! {
    fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int = (AT_FDCWD, path, follows(flags), Open);
    fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int = (AT_FDCWD, path, follows(flags), Open);
    fn openat(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int
        = (dirfd, path, follows(flags), Open);
    fn openat64(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int
        = (dirfd, path, follows(flags), Open);
    fn __open_2(path: *const c_char, flags: c_int) -> c_int = (AT_FDCWD, path, follows(flags), Open);
    fn __open64_2(path: *const c_char, flags: c_int) -> c_int = (AT_FDCWD, path, follows(flags), Open);
    fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int = (dirfd, path, follows(flags), Open);
    fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int = (dirfd, path, follows(flags), Open);
    fn creat(path: *const c_char, mode: libc::mode_t) -> c_int = (AT_FDCWD, path, true, Open);
    fn creat64(path: *const c_char, mode: libc::mode_t) -> c_int = (AT_FDCWD, path, true, Open);
    fn fopen(path: *const c_char, mode: *const c_char) -> *mut FILE = (AT_FDCWD, path, true, Open);
    fn fopen64(path: *const c_char, mode: *const c_char) -> *mut FILE = (AT_FDCWD, path, true, Open);
    fn freopen(path: *const c_char, mode: *const c_char, stream: *mut FILE) -> *mut FILE = (AT_FDCWD, path, true, Open);
    fn freopen64(path: *const c_char, mode: *const c_char, stream: *mut FILE) -> *mut FILE
        = (AT_FDCWD, path, true, Open);
    fn opendir(path: *const c_char) -> *mut libc::DIR = (AT_FDCWD, path, true, Open);
    fn stat(path: *const c_char, buf: *mut c_void) -> c_int = (AT_FDCWD, path, true, Lookup);
    fn stat64(path: *const c_char, buf: *mut c_void) -> c_int = (AT_FDCWD, path, true, Lookup);
    fn lstat(path: *const c_char, buf: *mut c_void) -> c_int = (AT_FDCWD, path, false, Lookup);
    fn lstat64(path: *const c_char, buf: *mut c_void) -> c_int = (AT_FDCWD, path, false, Lookup);
    fn fstatat(dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int
        = (dirfd, path, follows_at(flags), Lookup);
    fn fstatat64(dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int
        = (dirfd, path, follows_at(flags), Lookup);
    fn statx(dirfd: c_int, path: *const c_char, flags: c_int, mask: c_uint, buf: *mut c_void) -> c_int
        = (dirfd, path, follows_at(flags), Lookup);
    fn access(path: *const c_char, mode: c_int) -> c_int = (AT_FDCWD, path, true, Lookup);
    fn faccessat(dirfd: c_int, path: *const c_char, mode: c_int, flags: c_int) -> c_int
        = (dirfd, path, follows_at(flags), Lookup);
    // Binaries built against glibc before 2.33 call these instead of the stat family.
    fn __xstat(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int = (AT_FDCWD, path, true, Lookup);
    fn __xstat64(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int = (AT_FDCWD, path, true, Lookup);
    fn __lxstat(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int = (AT_FDCWD, path, false, Lookup);
    fn __lxstat64(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int = (AT_FDCWD, path, false, Lookup);
    fn __fxstatat(ver: c_int, dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int
        = (dirfd, path, follows_at(flags), Lookup);
    fn __fxstatat64(ver: c_int, dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int
        = (dirfd, path, follows_at(flags), Lookup);
}

/// `realpath` and its variants (`__realpath_chk` is what _FORTIFY_SOURCE calls): never a
/// finding themselves, but an escaping result is remembered (`paths::note_realpath`).
macro_rules! realpath_hooks {
    ($( fn $name:ident(path: *const c_char $(, $arg:ident: $ty:ty)*) -> *mut c_char; )*) => {$(
        /// # Safety
        ///
        /// The C function's own contract (this hook reads only the path and the result).
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char $(, $arg: $ty)*) -> *mut c_char {
            // SAFETY: the caller's arguments, passed on unchanged.
            let resolved = unsafe { real::$name(path $(, $arg)*) };
            // SAFETY: `path` is the caller's C string (or NULL); `resolved` NULL or realpath's result.
            unsafe { paths::note_realpath(path, resolved) };
            resolved
        }
    )*};
}

realpath_hooks! {
    fn realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char;
    fn __realpath_chk(path: *const c_char, resolved: *mut c_char, resolved_len: size_t) -> *mut c_char;
    fn canonicalize_file_name(path: *const c_char) -> *mut c_char;
}
