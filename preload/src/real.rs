//! The real libc functions behind our hooks, resolved lazily with `dlsym(RTLD_NEXT)`.
//!
//! Lazily, on first use, because sanitizer runtimes call hooked functions (e.g. `sigaction`)
//! before any constructor of ours could have run.

use libc::{c_char, c_int, c_void, pid_t, size_t, sockaddr, socklen_t, ssize_t};
use std::sync::atomic::{AtomicUsize, Ordering};

fn resolve(name: &'static str) -> usize {
    // SAFETY: `name` is a NUL-terminated literal (see the macro below).
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    if p.is_null() {
        // Cannot happen with glibc; there is no sane way to continue without the function.
        let msg = b"[sockfuzz] dlsym failed for a libc function\n";
        // SAFETY: raw syscall on a static buffer; avoids recursing into our own hooks.
        unsafe { libc::syscall(libc::SYS_write, 2, msg.as_ptr(), msg.len()) };
        std::process::abort();
    }
    p as usize
}

macro_rules! real_fns {
    ($( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {$(
        pub unsafe fn $name($($arg: $ty),*) -> $ret {
            static PTR: AtomicUsize = AtomicUsize::new(0);
            let mut p = PTR.load(Ordering::Relaxed);
            if p == 0 {
                p = resolve(concat!(stringify!($name), "\0"));
                PTR.store(p, Ordering::Relaxed);
            }
            // SAFETY: `p` is the next definition of this libc symbol, whose C signature this is.
            let f: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(p) };
            unsafe { f($($arg),*) }
        }
    )*};
}

real_fns! {
    fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t;
    fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t;
    fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t;
    fn recvfrom(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> ssize_t;
    fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t;
    fn close(fd: c_int) -> c_int;
    fn fork() -> pid_t;
    fn wait4(pid: pid_t, status: *mut c_int, options: c_int, usage: *mut libc::rusage) -> pid_t;
    fn waitid(idtype: libc::idtype_t, id: libc::id_t, info: *mut libc::siginfo_t, options: c_int) -> c_int;
    fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t;
    fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
    fn strcmp(a: *const c_char, b: *const c_char) -> c_int;
    fn strcasecmp(a: *const c_char, b: *const c_char) -> c_int;
    fn strncmp(a: *const c_char, b: *const c_char, n: size_t) -> c_int;
    fn strncasecmp(a: *const c_char, b: *const c_char, n: size_t) -> c_int;
    fn memcmp(a: *const c_void, b: *const c_void, n: size_t) -> c_int;
    fn bcmp(a: *const c_void, b: *const c_void, n: size_t) -> c_int;
    fn pthread_create(thread: *mut libc::pthread_t, attr: *const libc::pthread_attr_t, start: extern "C" fn(*mut c_void) -> *mut c_void, arg: *mut c_void) -> c_int;
}
