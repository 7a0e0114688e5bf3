//! LeakSanitizer's interface in an ASan build of the server, looked up with `dlsym` (a plain
//! build has none, and every function here then does nothing): what the memory-leak oracle
//! (`memory_leaks`) asks of it, and the allocations it must not count.
//!
//! Ours and the server's start-up are left out of leak reports with `__lsan_disable`, which
//! marks the allocations of the calling thread as never leaked (and their contents as roots):
//! the client thread's for good, the main thread's from the preload's start until its first wait
//! after `listen` (a `getaddrinfo` result never freed, an `epoll` context only the kernel points
//! to: not something a request did).

use std::cell::Cell;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

/// The functions, once looked up (0: absent).
static DISABLE: AtomicUsize = AtomicUsize::new(0);
static ENABLE: AtomicUsize = AtomicUsize::new(0);
static CHECK: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's allocations are hidden until its start-up is over.
    static HIDING: Cell<bool> = const { Cell::new(false) };
}

/// Look the functions up (at start-up, before `main`).
fn look_up() {
    for (slot, name) in [
        (&DISABLE, c"__lsan_disable"),
        (&ENABLE, c"__lsan_enable"),
        (&CHECK, c"__lsan_do_recoverable_leak_check"),
        (&ALLOCATED, c"__sanitizer_get_current_allocated_bytes"),
    ] {
        // SAFETY: a NUL-terminated name; dlsym only looks it up.
        slot.store(unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize, Relaxed);
    }
}

/// Call `void f(void)` at `slot`, if found.
fn call_void(slot: &AtomicUsize) -> bool {
    let f = slot.load(Relaxed);
    if f != 0 {
        // SAFETY: `__lsan_disable` and `__lsan_enable` are `void f(void)`; they only change a
        // thread-local counter (async-signal-safe).
        unsafe { std::mem::transmute::<usize, extern "C" fn()>(f)() };
    }
    f != 0
}

/// At start-up, in the main thread: hide its allocations until [`start_up_over`], unless the
/// leak oracles are off (`SOCKFUZZ_LEAKS=0`: then LeakSanitizer is left as the user set it).
pub fn hide_start_up() {
    // Read here, as the configuration is read only once the server listens.
    // SAFETY: a NUL-terminated name; getenv at start-up, before any thread could change it.
    let off = unsafe { libc::getenv(contract::env::LEAKS.as_ptr()) };
    // SAFETY: a non-null getenv result is a C string.
    if !off.is_null() && unsafe { std::ffi::CStr::from_ptr(off) }.to_bytes() == b"0" {
        return;
    }
    look_up();
    if call_void(&DISABLE) {
        HIDING.set(true);
    }
}

/// In a wait of a server thread once the server listens: a thread whose start-up allocations
/// were hidden is counted again. Async-signal-safe (waits are hooked in handlers too).
pub fn start_up_over() {
    if HIDING.get() {
        HIDING.set(false);
        call_void(&ENABLE);
    }
}

/// The calling thread's allocations are never leaks (our client thread's).
pub fn hide_this_thread() {
    call_void(&DISABLE);
}

/// Bytes the program has allocated and not freed (ours included), if this is an ASan build.
pub fn allocated_bytes() -> Option<usize> {
    let f = ALLOCATED.load(Relaxed);
    // SAFETY: `size_t __sanitizer_get_current_allocated_bytes(void)` only reads statistics.
    (f != 0 && CHECK.load(Relaxed) != 0).then(|| unsafe { std::mem::transmute::<usize, extern "C" fn() -> usize>(f)() })
}

/// LeakSanitizer's check, which reports every leak on the server's stderr (or ASan's
/// `log_path`) and lets the program go on: whether it found any. It stops every other thread
/// while it scans (slow: see `memory_leaks`). Not under a debugger: LeakSanitizer cannot stop
/// the world of a traced process, and would end it.
pub fn leaks_now() -> bool {
    let f = CHECK.load(Relaxed);
    // SAFETY: `int __lsan_do_recoverable_leak_check(void)`; it stops, scans and resumes the
    // process's threads itself.
    f != 0 && !traced() && unsafe { std::mem::transmute::<usize, extern "C" fn() -> libc::c_int>(f)() } != 0
}

/// Whether a debugger (ptrace) is attached to this process.
fn traced() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("TracerPid:")).is_some_and(|pid| pid.trim() != "0")
}
