//! The run's state that every process of the server sees.
//!
//! A pre-forked server (CS:APP's "tiny" with workers, Apache's prefork) listens, forks workers,
//! and whichever worker's `accept` wins gets our connection. The process-local atomics of
//! `state` cannot follow that: a worker would never see the client's port, and the run's
//! process would never learn who accepted or how it ended. So at the start of each run (in the
//! fork server's child, before the server forks anything) one shared anonymous page is mapped;
//! every process the server forks afterwards inherits it, and a run's page dies with its
//! processes (the next run maps its own, so a straggler of an earlier run cannot touch it).

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr};

#[repr(C)]
pub struct Shared {
    /// Local port of the client socket, published after `connect()`; 0 until then, -1: none.
    pub client_port: AtomicI32,
    /// Some process of the server accepted our connection (one connection per run).
    pub taken: AtomicBool,
    /// The pid of the process that accepted it.
    pub acceptor: AtomicI32,
    /// The pid of the run's process (where `listen` was called and the client thread runs).
    pub run_pid: AtomicI32,
    /// The accepting process still has our connection open (a worker's `close` clears it).
    pub conn_open: AtomicBool,
    /// Every thread of the accepting process waits (`idle`), when it is not the run's process.
    pub acceptor_waits: AtomicBool,
}

impl Shared {
    const fn new() -> Self {
        Shared {
            client_port: AtomicI32::new(0),
            taken: AtomicBool::new(false),
            acceptor: AtomicI32::new(0),
            run_pid: AtomicI32::new(0),
            conn_open: AtomicBool::new(false),
            acceptor_waits: AtomicBool::new(false),
        }
    }
}

/// Used until `create` succeeds (and if it cannot): then only the run's own process is followed.
static LOCAL: Shared = Shared::new();
static PAGE: AtomicPtr<Shared> = AtomicPtr::new(std::ptr::null_mut());

/// The run's shared state.
pub fn get() -> &'static Shared {
    let page = PAGE.load(SeqCst);
    if page.is_null() {
        &LOCAL
    } else {
        // SAFETY: a non-null PAGE is a mapping of at least size_of::<Shared>() bytes, zeroed by
        // the kernel (a valid `Shared`: atomics of zero), never unmapped.
        unsafe { &*page }
    }
}

/// Map this run's page (once per process, at the start of the run, before the server forks).
pub fn create() {
    // SAFETY: an anonymous shared mapping at an address of the kernel's choosing; no memory of
    // ours is touched. MAP_FAILED is checked.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size_of::<Shared>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if page != libc::MAP_FAILED {
        PAGE.store(page.cast(), SeqCst);
    }
    // SAFETY: getpid has no preconditions.
    get().run_pid.store(unsafe { libc::getpid() }, SeqCst);
}

/// Whether our connection was accepted by another process than the run's (a pre-forked
/// worker): its pid.
pub fn worker() -> Option<libc::pid_t> {
    let shared = get();
    let acceptor = shared.acceptor.load(SeqCst);
    (acceptor > 0 && acceptor != shared.run_pid.load(SeqCst)).then_some(acceptor)
}

/// In the process that holds our connection, when it is a worker: note whether all its threads
/// wait, and wake the client thread (in the run's process) to look.
pub fn note_worker_waits(waits: bool) {
    // This process accepted it (a process-local flag) and the run's process did not.
    if crate::state::ACCEPTED.load(SeqCst) && worker().is_some() {
        get().acceptor_waits.store(waits, SeqCst);
        if waits {
            crate::idle::wake();
        }
    }
}
