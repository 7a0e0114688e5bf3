//! The trigger: the server's first `listen()` on a TCP socket starts the fork server (a deferred
//! one, in an instrumented binary) and our client. Until then every hook stays transparent
//! (processes that never listen, like `make` or a shell, must not notice us).

use crate::state::{attach_control, config, IN_SERVER_CHILD, TRIGGERED};
use crate::{client, descriptor_leaks, memory_leaks, paths, real, replies};
use libc::{c_int, socklen_t};
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

/// Before `bind(fd)`: a listening socket gets SO_REUSEADDR so back-to-back runs never fail with
/// EADDRINUSE.
pub fn reuse_addr(fd: c_int) {
    if is_tcp(fd) {
        let one: c_int = 1;
        // SAFETY: `one` lives across the call; failure only means the option stays unset.
        unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&raw const one).cast(), 4) };
    }
}

/// After a successful `listen(fd)`: the first one on a TCP socket (not in a connection's child)
/// starts the run. Once the server listens, a `connect()` completes from the backlog whether the
/// server then waits in accept, poll, select or epoll_wait.
pub fn listened(fd: c_int) {
    if IN_SERVER_CHILD.load(Relaxed) || !is_tcp(fd) {
        return;
    }
    // Before TRIGGERED: a hook that sees it set never has to read the environment itself
    // (from a signal handler, say), and the fork server's children inherit the result.
    config();
    paths::init();
    if !TRIGGERED.swap(true, SeqCst) {
        start_forkserver(); // with a deferred fork server, this returns in every child
        client::start(fd);
    }
}

/// Start an instrumented binary's deferred fork server (our runtime, or AFL++'s), once.
/// Called before the first thread is created (threads do not survive `fork`) or at `listen`.
pub fn start_forkserver() {
    static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if STARTED.swap(true, SeqCst) {
        return;
    }
    // Before the fork server starts, so that every run inherits the mappings and addresses.
    real::prefetch_all();
    attach_control();
    replies::attach();
    memory_leaks::init();
    descriptor_leaks::init();
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
