//! The libc functions we override. Each one is a thin wrapper around the real function and is
//! transparent until the first `listen()` (processes that never listen, like `make` or a shell,
//! must not notice us).

use crate::idle::{self, Waiting};
use crate::paths::{self, Access::*};
use crate::state::*;
use crate::{client, end, fds, log::debug, real, shared, EOF_SPIN_READS};
use libc::{c_char, c_int, c_uint, c_void, pid_t, size_t, sockaddr, socklen_t, ssize_t, AT_FDCWD, FILE};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

/// Whether `fd` is an IPv4/IPv6 stream socket (the only kind we drive).
fn is_tcp(fd: c_int) -> bool {
    let get = |opt| {
        let mut v: c_int = 0;
        let mut len = size_of::<c_int>() as socklen_t;
        // SAFETY: `v` and `len` are valid for writes of the sizes given.
        let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut v).cast(), &mut len) };
        (r == 0).then_some(v)
    };
    get(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && matches!(get(libc::SO_DOMAIN), Some(libc::AF_INET | libc::AF_INET6))
}

/// Start an instrumented binary's deferred fork server (our runtime, or AFL++'s), once.
/// Called before the first thread is created (threads do not survive `fork`) or at `listen`.
fn start_forkserver() {
    static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if STARTED.swap(true, SeqCst) {
        return;
    }
    // Before the fork server starts, so that every run inherits the mappings and addresses.
    real::prefetch_all();
    attach_control();
    if !contract::cmplog::attach(contract::env::CMPLOG_SHM_ID) {
        crate::log::error(format_args!(
            "SOCKFUZZ_CMPLOG_SHM_ID is not a usable CmpLog map: string compares are not logged"
        ));
    }
    // SAFETY: looking up a symbol by a NUL-terminated name; a found `__afl_manual_init` is the
    // AFL++ entry point `void __afl_manual_init(void)`, idempotent in every runtime that has it.
    unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c"__afl_manual_init".as_ptr());
        if !f.is_null() {
            let f: extern "C" fn() = std::mem::transmute(f);
            f();
        }
    }
}

/// Listening sockets get SO_REUSEADDR so back-to-back runs never fail with EADDRINUSE.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if is_tcp(fd) {
        let one: c_int = 1;
        // SAFETY: `one` lives across the call; failure only means the option stays unset.
        unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&raw const one).cast(), 4) };
    }
    unsafe { real::bind(fd, addr, len) }
}

/// The trigger: once the server listens, a `connect()` completes from the backlog whether the
/// server then waits in accept, poll, select or epoll_wait.
#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::listen(fd, backlog) };
    if r != 0 || IN_SERVER_CHILD.load(Relaxed) || !is_tcp(fd) {
        return r;
    }
    // Before TRIGGERED: a hook that sees it set never has to read the environment itself
    // (from a signal handler, say), and the fork server's children inherit the result.
    config();
    paths::init();
    if !TRIGGERED.swap(true, SeqCst) {
        start_forkserver(); // with a deferred fork server, this returns in every child
        client::start(fd);
    }
    r
}

thread_local! {
    /// This thread is counted in `LIVE` (created through our hook).
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A server thread's start routine and argument, handed to [`counted_thread`].
struct Start {
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
}

/// Every server thread is counted alive while it runs (`LIVE`).
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    start_forkserver();
    if STARTING_CLIENT.get() || IN_SERVER_CHILD.load(Relaxed) {
        // SAFETY: the caller's own arguments, passed on to the function it called.
        return unsafe { real::pthread_create(thread, attr, start, arg) };
    }
    // Counted before it exists, so that it never runs uncounted.
    LIVE.fetch_add(1, SeqCst);
    let boxed = Box::into_raw(Box::new(Start { start, arg }));
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::pthread_create(thread, attr, counted_thread, boxed.cast()) };
    if r != 0 {
        LIVE.fetch_sub(1, SeqCst);
        // SAFETY: the thread was not created, so the box is still ours.
        drop(unsafe { Box::from_raw(boxed) });
    }
    r
}

/// Runs a server thread. No value with a destructor lives across the call: `pthread_exit`
/// unwinds (forced) through this frame, and `pthread_exit`'s hook does the bookkeeping then.
extern "C" fn counted_thread(boxed: *mut c_void) -> *mut c_void {
    // SAFETY: `boxed` is the Box<Start> our pthread_create hook leaked for this thread.
    let Start { start, arg } = *unsafe { Box::from_raw(boxed.cast::<Start>()) };
    COUNTED.set(true);
    let result = start(arg);
    thread_ends();
    result
}

/// The calling server thread ends: it no longer counts as alive.
fn thread_ends() {
    // SAFETY: gettid and getpid have no preconditions.
    let main = unsafe { libc::gettid() == libc::getpid() };
    if COUNTED.replace(false) || (main && !IN_SERVER_CHILD.load(Relaxed)) {
        LIVE.fetch_sub(1, SeqCst);
        if idle::everyone_waits() {
            idle::wake();
        }
    }
}

/// A server's main thread may end this way and leave its threads serving.
#[no_mangle]
pub unsafe extern "C" fn pthread_exit(value: *mut c_void) -> ! {
    thread_ends();
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::pthread_exit(value) }
}

/// The blocking waits, counted while they last (`idle`): `$ms` is the timeout in milliseconds,
/// negative for none.
macro_rules! wait_hooks {
    ($( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $ms:expr; )*) => {$(
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
        -> c_int = tv_ms(timeout);
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
#[no_mangle]
pub unsafe extern "C" fn alarm(secs: libc::c_uint) -> libc::c_uint {
    idle::timer(libc::timespec { tv_sec: secs.into(), tv_nsec: 0 });
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { real::alarm(secs) }
}

#[no_mangle]
pub unsafe extern "C" fn ualarm(usecs: libc::useconds_t, interval: libc::useconds_t) -> libc::useconds_t {
    idle::timer(libc::timespec { tv_sec: 0, tv_nsec: i64::from(usecs) * 1000 });
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { real::ualarm(usecs, interval) }
}

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

#[no_mangle]
pub unsafe extern "C" fn timer_settime(
    timer: libc::timer_t,
    flags: c_int,
    new: *const libc::itimerspec,
    old: *mut libc::itimerspec,
) -> c_int {
    note_itimerspec(new);
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { real::timer_settime(timer, flags, new, old) }
}

#[no_mangle]
pub unsafe extern "C" fn timerfd_settime(
    fd: c_int,
    flags: c_int,
    new: *const libc::itimerspec,
    old: *mut libc::itimerspec,
) -> c_int {
    note_itimerspec(new);
    // SAFETY: the caller's arguments, passed on unchanged.
    unsafe { real::timerfd_settime(fd, flags, new, old) }
}

/// The new value of a POSIX timer or a timerfd, if one is set (NULL is only a read).
fn note_itimerspec(new: *const libc::itimerspec) {
    if !new.is_null() {
        // SAFETY: a non-null new value points to the caller's itimerspec.
        idle::timer(unsafe { (*new).it_value });
    }
}

/// Milliseconds of a `select` timeout (NULL: forever).
fn tv_ms(tv: *const libc::timeval) -> i64 {
    if tv.is_null() {
        return -1;
    }
    // SAFETY: a non-null timeout points to the caller's timeval.
    let tv = unsafe { *tv };
    tv.tv_sec.saturating_mul(1000).saturating_add(tv.tv_usec / 1000)
}

#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    on_accept(fd, || unsafe { real::accept(fd, addr, len) })
}

#[no_mangle]
pub unsafe extern "C" fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    on_accept(fd, || unsafe { real::accept4(fd, addr, len, flags) })
}

/// Exactly one connection per test case: ours. Connections left in a shared backlog by an
/// earlier run (a fork-server child killed between connect and accept) are dropped; after ours,
/// a blocking accept parks (until the next test case of a persistent run) and a non-blocking
/// one says EAGAIN (so event loops keep going).
fn on_accept(listener: c_int, mut real_accept: impl FnMut() -> c_int) -> c_int {
    if !TRIGGERED.load(Relaxed) || IN_SERVER_CHILD.load(Relaxed) {
        return real_accept();
    }
    shared::die_with_run();
    let shared = shared::get();
    loop {
        // SAFETY: F_GETFL takes no argument and only reads the fd's flags.
        let blocking = unsafe { libc::fcntl(listener, libc::F_GETFL) } & libc::O_NONBLOCK == 0;
        if shared.taken.load(SeqCst) {
            if !blocking {
                // SAFETY: errno is thread-local.
                unsafe { *libc::__errno_location() = libc::EAGAIN };
                return -1;
            }
            // Until the next test case of a persistent run; forever otherwise.
            let _waiting = Waiting::enter(-1);
            while shared.taken.load(SeqCst) {
                crate::persist::park();
            }
            continue;
        }
        let conn = {
            let _waiting = Waiting::enter(if blocking { -1 } else { 0 });
            real_accept()
        };
        if conn < 0 {
            return conn;
        }
        if client::is_ours(conn) && !shared.taken.swap(true, SeqCst) {
            EOF_READS.store(0, Relaxed);
            CONN_FD.store(conn, SeqCst);
            ACCEPTED.store(true, SeqCst);
            shared.conn_open.store(true, SeqCst);
            // SAFETY: getpid has no preconditions.
            shared.acceptor.store(unsafe { libc::getpid() }, SeqCst);
            debug!("server accepted the connection as fd {conn}");
            if shared::worker().is_some() {
                idle::wake(); // the client thread watches the worker from now on
            }
            return conn;
        }
        debug!("dropping a stale connection left by an earlier run");
        // SAFETY: `conn` was just returned by accept and is not known to the server.
        unsafe { real::close(conn) };
    }
}

/// Counts EOF reads on our connection: a server that keeps reading an exhausted connection
/// without closing it is hung, and waiting for the fuzzer's timeout would waste it.
#[inline]
fn note_read(fd: c_int, requested: size_t, got: ssize_t) {
    if fd < 0 || fd != CONN_FD.load(Relaxed) {
        return;
    }
    if got > 0 {
        EOF_READS.store(0, Relaxed);
    } else if got == 0 && requested > 0 && EOF_READS.fetch_add(1, Relaxed) + 1 >= EOF_SPIN_READS && config().eof_spin {
        end::eof_spin();
    }
}

#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::read(fd, buf, n) };
    note_read(fd, n, r);
    r
}

#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::recv(fd, buf, n, flags) };
    note_read(fd, n, r);
    r
}

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
    note_read(fd, n, r);
    r
}

#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::recvmsg(fd, msg, flags) };
    // SAFETY: the caller passed a valid msghdr (the real recvmsg has just used it).
    let requested = unsafe { (0..(*msg).msg_iovlen).map(|i| (*(*msg).msg_iov.add(i)).iov_len).sum() };
    note_read(fd, requested, r);
    r
}

/// Our own descriptors (`fds`) stay open whatever the server closes: the call pretends.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if fds::ours(fd) {
        return 0;
    }
    if fd >= 0 && CONN_FD.compare_exchange(fd, -1, SeqCst, Relaxed).is_ok() && !IN_SERVER_CHILD.load(Relaxed) {
        shared::get().conn_open.store(false, SeqCst);
    }
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::close(fd) }
}

#[no_mangle]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    fds::close_range_around(first, last, flags)
}

#[no_mangle]
pub unsafe extern "C" fn closefrom(low: c_int) {
    fds::close_range_around(low.max(0) as c_uint, c_uint::MAX, 0);
}

/// A descriptor of ours cannot be replaced (EBADF, as for a descriptor out of range).
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if fds::ours(new) {
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = libc::EBADF };
        return -1;
    }
    unsafe { real::dup2(old, new) }
}

#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if fds::ours(new) {
        // SAFETY: errno is thread-local.
        unsafe { *libc::__errno_location() = libc::EBADF };
        return -1;
    }
    unsafe { real::dup3(old, new, flags) }
}

/// A process that leaves the run by `_exit` (as a daemon's parent does) is seen like one that
/// calls `exit` (`client::exited_early`). `_exit` may be called in a signal handler: what that
/// does is async-signal-safe (getpid, open/read of `/proc`, poll, pause) except the message of
/// a run that cannot be driven, which allocates; it is written only when the run's process leaves before
/// anything accepted the connection with no process of its own left, and the process ends then.
#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    if TRIGGERED.load(Relaxed) {
        client::exited_early();
    }
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::_exit(status) }
}

#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { _exit(status) }
}

/// `daemon(3)` stays in the foreground: the process the fuzzer started (or the run's) is the one
/// it follows, so it must be the one that serves. The working directory changes as asked; the
/// standard descriptors are kept (the server's messages stay visible). glibc's `daemon` forks
/// inside libc, where the `fork` hook cannot see it.
#[no_mangle]
pub unsafe extern "C" fn daemon(nochdir: c_int, _noclose: c_int) -> c_int {
    debug!("daemon(): staying in the foreground");
    // SAFETY: a NUL-terminated literal.
    if nochdir == 0 && unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
        return -1;
    }
    0
}

/// Fork-per-connection servers: the first child forked after accept handles our connection,
/// and its fate (signal, EOF spin) becomes the run's. A process forked before (a pre-forked
/// worker) starts with its own thread counts and dies with the run's process. Every fork of
/// the run is counted, in every process: past [`shared::MAX_FORKS`] it fails.
#[no_mangle]
pub unsafe extern "C" fn fork() -> pid_t {
    if !TRIGGERED.load(SeqCst) || !shared::in_run() {
        // SAFETY: the caller's own arguments, passed on to the function it called.
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
        // SAFETY: the caller's own arguments, passed on to the function it called.
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
    // SAFETY: the caller's own arguments, passed on to the function it called.
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
        if CHILD_PID.compare_exchange(0, pid, SeqCst, Relaxed).is_ok() {
            idle::wake(); // to watch the child
        }
    }
    FORKING.fetch_sub(1, SeqCst);
    pid
}

/// The server may reap the connection's child itself: keep its status for the client thread.
fn note_reaped(pid: pid_t, status: c_int) {
    let child = CHILD_PID.load(SeqCst);
    let ours = (ACCEPTED.load(SeqCst) && (child == 0 || child == pid)) || shared::worker() == Some(pid);
    if pid > 0 && ours && REAPED_PID.load(SeqCst) == 0 {
        REAPED_STATUS.store(status, SeqCst);
        REAPED_PID.store(pid, SeqCst);
    }
}

#[no_mangle]
pub unsafe extern "C" fn waitpid(pid: pid_t, status: *mut c_int, options: c_int) -> pid_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { wait4(pid, status, options, std::ptr::null_mut()) }
}

#[no_mangle]
pub unsafe extern "C" fn wait(status: *mut c_int) -> pid_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { wait4(-1, status, 0, std::ptr::null_mut()) }
}

#[no_mangle]
pub unsafe extern "C" fn wait3(status: *mut c_int, options: c_int, usage: *mut libc::rusage) -> pid_t {
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { wait4(-1, status, options, usage) }
}

#[no_mangle]
pub unsafe extern "C" fn wait4(pid: pid_t, status: *mut c_int, options: c_int, usage: *mut libc::rusage) -> pid_t {
    let mut st: c_int = 0;
    // SAFETY: the caller's own arguments, passed on to the function it called.
    let r = unsafe { real::wait4(pid, &mut st, options, usage) };
    if r > 0 {
        note_reaped(r, st);
        if !status.is_null() {
            // SAFETY: the caller gave a valid (non-null) status pointer.
            unsafe { *status = st };
        }
    }
    r
}

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
        // SAFETY: waitid succeeded, so `*info` describes a child (or is zeroed for WNOHANG).
        let (pid, code, value) = unsafe { ((*info).si_pid(), (*info).si_code, (*info).si_status()) };
        let status = if code == libc::CLD_EXITED { (value & 0xff) << 8 } else { value & 0x7f };
        note_reaped(pid, status);
    }
    r
}

/// `SIGCHLD = SIG_IGN` or `SA_NOCLDWAIT` make the kernel reap children, and a crashed child's
/// signal would be lost: keep the default disposition (which ignores SIGCHLD too).
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    let handler = if sig == libc::SIGCHLD && handler == libc::SIG_IGN { libc::SIG_DFL } else { handler };
    // SAFETY: the caller's own arguments, passed on to the function it called.
    unsafe { real::signal(sig, handler) }
}

#[no_mangle]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    if sig != libc::SIGCHLD || act.is_null() {
        // SAFETY: the caller's own arguments, passed on to the function it called.
        return unsafe { real::sigaction(sig, act, old) };
    }
    // SAFETY: `act` is non-null and points to the caller's sigaction.
    let mut act = unsafe { *act };
    if act.sa_sigaction == libc::SIG_IGN {
        act.sa_sigaction = libc::SIG_DFL;
    }
    act.sa_flags &= !libc::SA_NOCLDWAIT;
    // SAFETY: a copy of the caller's sigaction (still valid), and the caller's `old`.
    unsafe { real::sigaction(sig, &act, old) }
}

/// Path functions: the path is checked (`paths`) before the real call, which gets the same
/// arguments. `(dirfd, path, follow, access)` say how to read the arguments.
macro_rules! path_hooks {
    ($( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty
        = ($dirfd:expr, $path:ident, $follow:expr, $access:expr); )*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            // SAFETY: `$path` is the caller's path argument (NULL or a C string), `$dirfd` its directory.
            unsafe { paths::check($dirfd, $path, $follow, $access) };
            // SAFETY: the caller's arguments, passed on unchanged.
            unsafe { real::$name($($arg),*) }
        }
    )*};
}

/// Whether an open follows a final symlink.
fn follows(flags: c_int) -> bool {
    flags & libc::O_NOFOLLOW == 0
}

/// Whether an *at lookup follows a final symlink.
fn follows_at(flags: c_int) -> bool {
    flags & libc::AT_SYMLINK_NOFOLLOW == 0
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
