//! The run's state that every process of the server sees.
//!
//! A pre-forked server (CS:APP's "tiny" with workers, Apache's prefork) listens, forks workers,
//! and whichever worker's `accept` wins gets our connection. The process-local atomics of
//! `state` cannot follow that: a worker would never see the client's port, and the run's
//! process would never learn who accepted or how it ended. So at the start of each run (in the
//! fork server's child, before the server forks anything) one shared anonymous page is mapped;
//! every process the server forks afterwards inherits it, and a run's page dies with its
//! processes (the next run maps its own, so a straggler of an earlier run cannot touch it).
//!
//! The same page follows a server that forks into the background after it listens (fork,
//! `setsid`, fork again, the parents exit): the run's process is a child subreaper, so the
//! daemon becomes its child and can be waited for, and it stays as the daemon's stand-in until
//! the run is over (`client::exited_early`). Every process forked during the run is listed here
//! and killed when the run's process ends; a run forks at most [`MAX_FORKS`] (a fork bomb's
//! next `fork` fails with EAGAIN, as under `ulimit -u`). The run's process also leads a process
//! group of its own, which our fork server kills when the run is over, however it ended.

use crate::page::{Page, ZeroIsValid};
use crate::state::MAX_CONNS;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize};

/// Processes one run may fork, all of them listed.
pub const MAX_FORKS: usize = 256;

#[repr(C)]
pub struct Shared {
    /// Connections this test case opens (`ports` has a slot for each).
    pub conns: AtomicU32,
    /// Local port of each client connection, published right after its `connect()`; 0 before.
    pub ports: [AtomicI32; MAX_CONNS],
    /// Connects in progress whose port is not published yet (`client::is_ours` waits on it).
    pub connecting: AtomicU32,
    /// Bit i: connection i was accepted (by some process of the server).
    pub claimed: AtomicU64,
    /// Bit i: connection i was reset by the client (a RST): accepted later, it has no peer
    /// address any more, and is recognized by this instead.
    pub reset: AtomicU64,
    /// Bit i: the server read the end of connection i (a read that returned 0).
    pub eof_read: AtomicU64,
    /// How many of our connections were accepted.
    pub accepted: AtomicU32,
    /// Every connection of the test case was accepted: further accepts park (or say EAGAIN).
    pub taken: AtomicBool,
    /// The pid of the process that accepted the first of them.
    pub acceptor: AtomicI32,
    /// The pid of the run's process (where `listen` was called and the client thread runs).
    pub run_pid: AtomicI32,
    /// Our connections the accepting processes still have open (a worker's `close` counts).
    pub open: AtomicU32,
    /// Every thread of the accepting process waits (`idle`), when it is not the run's process.
    pub acceptor_waits: AtomicBool,
    /// Processes forked by any process of the run since it started, in order.
    forked: [AtomicI32; MAX_FORKS],
    forked_count: AtomicUsize,
}

impl Shared {
    const fn new() -> Self {
        Shared {
            conns: AtomicU32::new(0),
            ports: [const { AtomicI32::new(0) }; MAX_CONNS],
            connecting: AtomicU32::new(0),
            claimed: AtomicU64::new(0),
            reset: AtomicU64::new(0),
            eof_read: AtomicU64::new(0),
            accepted: AtomicU32::new(0),
            taken: AtomicBool::new(false),
            acceptor: AtomicI32::new(0),
            run_pid: AtomicI32::new(0),
            open: AtomicU32::new(0),
            acceptor_waits: AtomicBool::new(false),
            forked: [const { AtomicI32::new(0) }; MAX_FORKS],
            forked_count: AtomicUsize::new(0),
        }
    }
}

/// Used until `create` succeeds (and if it cannot): then only the run's own process is followed.
static PAGE: Page<Shared> = Page::new(Shared::new());
/// Set by `create` in the run's process, inherited by what it forks; never in the fork server.
static IN_RUN: AtomicBool = AtomicBool::new(false);

// SAFETY: integers and atomics only.
unsafe impl ZeroIsValid for Shared {}

/// The run's shared state.
pub fn get() -> &'static Shared {
    PAGE.get()
}

/// Map this run's page (once per process, at the start of the run, before the server forks).
pub fn create() {
    IN_RUN.store(true, SeqCst);
    PAGE.map();
    // SAFETY: getpid has no preconditions; prctl(PR_SET_CHILD_SUBREAPER) only sets a flag on
    // this process (the processes it forks that lose their parent become its children);
    // setpgid(0, 0) only moves this process into a group of its own (it fails, harmlessly, in
    // a session leader, which already leads one).
    unsafe {
        get().run_pid.store(libc::getpid(), SeqCst);
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        libc::setpgid(0, 0);
    }
}

/// Whether any of our connections was accepted.
pub fn accepted_any() -> bool {
    get().accepted.load(SeqCst) > 0
}

/// A persistent run's next test case (`persist`): no connection taken, nothing forked for it.
/// Called when nothing forked during the last one still runs.
pub fn reset() {
    let shared = get();
    shared.conns.store(0, SeqCst);
    shared.ports.iter().for_each(|p| p.store(0, SeqCst));
    shared.claimed.store(0, SeqCst);
    shared.reset.store(0, SeqCst);
    shared.eof_read.store(0, SeqCst);
    shared.accepted.store(0, SeqCst);
    shared.acceptor.store(0, SeqCst);
    shared.open.store(0, SeqCst);
    shared.acceptor_waits.store(false, SeqCst);
    shared.forked_count.store(0, SeqCst);
    shared.taken.store(false, SeqCst);
}

/// Whether this is the run's process (where `listen` was called and the client thread runs).
pub fn is_run_process() -> bool {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    me == get().run_pid.load(SeqCst)
}

/// Whether this process is in a run: not the fork server, whose forks start the runs.
pub fn in_run() -> bool {
    IN_RUN.load(SeqCst)
}

/// Whether the run may fork once more (fewer than [`MAX_FORKS`] so far).
pub fn may_fork() -> bool {
    get().forked_count.load(SeqCst) < MAX_FORKS
}

/// List a process forked during the run (in the parent, right after `fork`).
pub fn note_forked(pid: libc::pid_t) {
    let shared = get();
    if let Some(slot) = shared.forked.get(shared.forked_count.fetch_add(1, SeqCst)) {
        slot.store(pid, SeqCst);
    }
}

fn forked() -> impl Iterator<Item = libc::pid_t> {
    let shared = get();
    shared.forked.iter().take(shared.forked_count.load(SeqCst)).map(|p| p.load(SeqCst)).filter(|&p| p > 0)
}

/// A listed process that is still one of the run's: running (not a zombie), and the child of
/// the run's process or of another listed one. A listed pid that ended and was reaped may
/// belong to an unrelated process by now (pids wrap quickly where `pid_max` is 32768).
fn still_ours(pid: libc::pid_t) -> bool {
    let run = get().run_pid.load(SeqCst);
    match parent_if_running(pid) {
        Some(parent) => parent == run || forked().any(|p| p == parent),
        None => false,
    }
}

/// Whether the run has forked (a worker, a daemon, a connection's child).
pub fn has_forked() -> bool {
    get().forked_count.load(SeqCst) > 0
}

/// Whether a process forked during the run still runs (one the server went into the background as).
pub fn forked_alive() -> bool {
    forked().any(still_ours)
}

/// In the run's process, as it ends: kill every process forked during the run that is still
/// one of its own (a worker, a daemon), so that none outlives it, and reap our children among
/// them and every other ended child: left to init, zombies may wait long (a container's init
/// reaps when it likes) and use up the pid space. Allocation-free: called on the way to
/// `_exit` and `raise`.
pub fn kill_forked() {
    if !is_run_process() {
        return;
    }
    // Again while the listed ones forked more in the meantime (at most MAX_FORKS in all).
    let mut listed = usize::MAX;
    while listed != get().forked_count.load(SeqCst) {
        listed = get().forked_count.load(SeqCst);
        for pid in forked().filter(|&pid| still_ours(pid)) {
            // SAFETY: SIGKILL to a running process this run forked (checked just now; it
            // cannot be reaped and its pid reused in between, as only its parent, one of
            // ours, could reap it).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    for pid in forked() {
        // A killed child ends within microseconds; bounded, in case one could not be killed.
        for _ in 0..1000 {
            // SAFETY: the real wait4 (not the hook), on a pid of this run, without blocking.
            match unsafe { crate::real::wait4(pid, std::ptr::null_mut(), libc::WNOHANG, std::ptr::null_mut()) } {
                0 => std::thread::yield_now(),
                _ => break, // reaped, or not our child
            }
        }
    }
    // SAFETY: as above, for any ended child (a daemon's exited parent, reparented to us).
    while unsafe { crate::real::wait4(-1, std::ptr::null_mut(), libc::WNOHANG, std::ptr::null_mut()) } > 0 {}
}

/// The parent of `pid` if it runs (`/proc/PID/stat`: not a zombie), read without allocating.
fn parent_if_running(pid: libc::pid_t) -> Option<libc::pid_t> {
    let mut digits = [0u8; 10];
    let (mut n, mut at) = (pid.max(0) as u32, digits.len());
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut path = [0u8; 32]; // "/proc/" + 10 digits + "/stat" + NUL fits
    let end = 6 + digits.len() - at;
    path[..6].copy_from_slice(b"/proc/");
    path[6..end].copy_from_slice(&digits[at..]);
    path[end..end + 5].copy_from_slice(b"/stat");
    // SAFETY: `path` is NUL-terminated; the descriptor is read into a local buffer and closed.
    let (buf, len) = unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return None;
        }
        let mut buf = [0u8; 256];
        let len = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        crate::real::close(fd);
        (buf, len)
    };
    let stat = &buf[..usize::try_from(len).ok()?];
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.iter().rposition(|&b| b == b')')? + 2..];
    if rest.first() == Some(&b'Z') {
        return None;
    }
    let ppid = rest.get(2..)?.split(|&b| b == b' ').next()?;
    std::str::from_utf8(ppid).ok()?.parse().ok()
}

/// In a process of the run that is not the run's process, once it is the run process's child:
/// die with it. A daemon whose parent exited became the subreaper's child; the parent-death
/// signal could not be set when it was forked, as that parent was about to exit.
pub fn die_with_run() {
    /// The process that has settled it (a forked process inherits another's pid here).
    static SETTLED: AtomicI32 = AtomicI32::new(0);
    // SAFETY: getpid and getppid have no preconditions; prctl(PR_SET_PDEATHSIG) only sets a
    // flag on this process.
    unsafe {
        let me = libc::getpid();
        if SETTLED.load(SeqCst) == me {
            return;
        }
        let run = get().run_pid.load(SeqCst);
        if me == run {
            SETTLED.store(me, SeqCst);
        } else if libc::getppid() == run {
            SETTLED.store(me, SeqCst);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        }
    }
}

/// Whether our connection was accepted by another process than the run's (a pre-forked
/// worker): its pid.
pub fn worker() -> Option<libc::pid_t> {
    let shared = get();
    let acceptor = shared.acceptor.load(SeqCst);
    (acceptor > 0 && acceptor != shared.run_pid.load(SeqCst)).then_some(acceptor)
}
