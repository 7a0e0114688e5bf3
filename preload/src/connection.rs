//! Our connections inside the server: only the test case's own are accepted, each once, their
//! end-of-file reads counted (a server that reads EOF over and over without closing is hung),
//! and their `close` noted for the idle verdict of a pre-forked worker.

use crate::idle::{self, Waiting};
use crate::log::debug;
use crate::state::*;
use crate::{end, persist, real, shared, sockets};
use libc::{c_int, size_t, ssize_t};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

/// Consecutive zero-byte reads on our connection that count as an EOF spin.
const EOF_SPIN_READS: u32 = 1000;

/// Only the test case's connections, each once. Connections left in a shared backlog by an
/// earlier run (a fork-server child killed between connect and accept) are dropped; after all
/// of ours, a blocking accept parks (until the next test case of a persistent run) and a
/// non-blocking one says EAGAIN (so event loops keep going).
pub fn accept(listener: c_int, mut real_accept: impl FnMut() -> c_int) -> c_int {
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
                persist::park();
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
        if let Some(index) = sockets::is_ours(conn) {
            EOF_READS.store(0, Relaxed);
            CONN_FDS.insert(conn);
            FD_OF_CONN[index].store(conn, SeqCst);
            ACCEPTED.store(true, SeqCst);
            shared.open.fetch_add(1, SeqCst);
            // SAFETY: getpid has no preconditions.
            let _ = shared.acceptor.compare_exchange(0, unsafe { libc::getpid() }, SeqCst, SeqCst);
            let accepted = shared.accepted.fetch_add(1, SeqCst) + 1;
            if accepted >= shared.conns.load(SeqCst) {
                shared.taken.store(true, SeqCst);
            }
            debug!("server accepted connection {index} as fd {conn}");
            idle::wake(); // the client thread may watch a worker from now on, or wait for this
            return conn;
        }
        debug!("dropping a stale connection left by an earlier run");
        // SAFETY: `conn` was just returned by accept and is not known to the server.
        unsafe { real::close(conn) };
    }
}

/// Counts EOF reads on our connections: a server that keeps reading an exhausted connection
/// without closing it is hung, and waiting for the fuzzer's timeout would waste it. Which
/// connections' end the server has read is noted for `play` (the server knows the client left).
#[inline]
pub fn note_read(fd: c_int, requested: size_t, got: ssize_t) {
    if fd < 0 || !CONN_FDS.contains(fd) {
        return;
    }
    if got > 0 {
        EOF_READS.store(0, Relaxed);
    } else if got == 0 && requested > 0 {
        if let Some(index) = FD_OF_CONN.iter().position(|f| f.load(Relaxed) == fd) {
            shared::get().eof_read.fetch_or(1 << index, SeqCst);
        }
        if EOF_READS.fetch_add(1, Relaxed) + 1 >= EOF_SPIN_READS && config().eof_spin {
            end::eof_spin();
        }
    }
}

/// The server closes `fd` (not one of ours, which it cannot close): if it is one of our
/// connections, it is no longer open in this process.
pub fn closed(fd: c_int) {
    if fd >= 0 && CONN_FDS.remove(fd) && !IN_SERVER_CHILD.load(Relaxed) {
        shared::get().open.fetch_sub(1, SeqCst);
    }
    if fd >= 0 && fd == LISTEN_FD.load(Relaxed) && shared::is_run_process() {
        debug!("the server closed its listening socket");
        LISTENER_CLOSED.store(true, SeqCst);
        idle::wake();
    }
}

/// The server no longer listens: its process closed the listening socket, and nothing it forked
/// (a pre-forked worker with its own copy) is left to accept.
pub fn listener_gone() -> bool {
    LISTENER_CLOSED.load(SeqCst) && !shared::forked_alive()
}
