//! Server threads counted alive (`LIVE`), for `idle`'s "every server thread waits": a thread
//! created through `pthread_create` counts from before it starts until its start routine
//! returns or it calls `pthread_exit`. Our own client thread is no server thread.

use crate::state::{IN_SERVER_CHILD, LIVE, STARTING_CLIENT};
use crate::{idle, real};
use libc::{c_int, c_void};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

thread_local! {
    /// This thread is counted in `LIVE` (created through our hook).
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A server thread's start routine and argument, handed to [`counted_thread`].
struct Start {
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
}

/// `pthread_create`, with the new thread counted alive while it runs (unless it is our client
/// thread, or a thread of a connection's child, whose counters are a stale copy).
///
/// # Safety
///
/// `pthread_create`'s own contract: `thread` is writable, `attr` is NULL or initialised, and
/// `start` may be called with `arg` on another thread.
pub unsafe fn create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    if STARTING_CLIENT.get() || IN_SERVER_CHILD.load(Relaxed) {
        // SAFETY: the caller's own arguments, passed on to the function it called.
        return unsafe { real::pthread_create(thread, attr, start, arg) };
    }
    // Counted before it exists, so that it never runs uncounted.
    LIVE.fetch_add(1, SeqCst);
    let boxed = Box::into_raw(Box::new(Start { start, arg }));
    // SAFETY: the caller's own arguments, with our start routine, which takes over the box.
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
    // SAFETY: `boxed` is the Box<Start> `create` leaked for this thread.
    let Start { start, arg } = *unsafe { Box::from_raw(boxed.cast::<Start>()) };
    COUNTED.set(true);
    let result = start(arg);
    ends();
    result
}

/// The calling server thread ends (its start routine returned, or it calls `pthread_exit`; a
/// server's main thread may end this way and leave its threads serving): it no longer counts
/// as alive.
pub fn ends() {
    // SAFETY: gettid and getpid have no preconditions.
    let main = unsafe { libc::gettid() == libc::getpid() };
    if COUNTED.replace(false) || (main && !IN_SERVER_CHILD.load(Relaxed)) {
        LIVE.fetch_sub(1, SeqCst);
        if idle::everyone_waits() {
            idle::wake();
        }
    }
}
