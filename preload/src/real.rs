//! The real libc functions behind our hooks, resolved lazily with `dlsym(RTLD_NEXT)`.
//!
//! Lazily, on first use, because sanitizer runtimes call hooked functions (e.g. `sigaction`)
//! before any constructor of ours could have run; and all at once before the fork server starts
//! (`prefetch_all`), so that runs never look one up.

use libc::{c_char, c_int, c_uint, c_void, pid_t, size_t, sockaddr, socklen_t, ssize_t};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The address in `slot`, looking `name` (NUL-terminated) up on first use.
fn cached(slot: &AtomicUsize, name: &'static str) -> usize {
    prefetch(slot, name, None);
    let p = slot.load(Ordering::Relaxed);
    if p == 0 {
        // Cannot happen with glibc; there is no sane way to continue without the function.
        let msg = b"[sockfuzz] dlsym failed for a libc function\n";
        // SAFETY: raw syscall on a static buffer; avoids recursing into our own hooks.
        unsafe { libc::syscall(libc::SYS_write, 2, msg.as_ptr(), msg.len()) };
        std::process::abort();
    }
    p
}

/// Look `name` up (by `version` first, if given) unless it is known; a missing one stays 0,
/// which `cached` reports if it is ever called.
fn prefetch(slot: &AtomicUsize, name: &'static str, version: Option<&'static str>) {
    if slot.load(Ordering::Relaxed) != 0 {
        return;
    }
    let mut p = std::ptr::null_mut();
    if let Some(version) = version {
        // SAFETY: NUL-terminated literals; dlvsym only looks the symbol up.
        p = unsafe { libc::dlvsym(libc::RTLD_NEXT, name.as_ptr().cast(), version.as_ptr().cast()) };
    }
    if p.is_null() {
        // SAFETY: a NUL-terminated literal; dlsym only looks the symbol up.
        p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    }
    if !p.is_null() {
        slot.store(p as usize, Ordering::Relaxed);
    }
}

/// Every function of the list as `real::NAME`, its address kept in `NAME::PTR` (a module of
/// the same name, in the other namespace), and `$prefetch()` looking them all up at once.
macro_rules! real_fns {
    ($prefetch:ident; $( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        $(
            #[allow(non_snake_case)]
            mod $name {
                pub static PTR: super::AtomicUsize = super::AtomicUsize::new(0);
            }
            /// The next definition of the libc function (ours skipped).
            ///
            /// # Safety
            ///
            /// The C function's own contract.
            pub unsafe fn $name($($arg: $ty),*) -> $ret {
                let p = cached(&$name::PTR, concat!(stringify!($name), "\0"));
                // SAFETY: `p` is the next definition of this libc symbol, whose C signature this is.
                let f: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(p) };
                // SAFETY: our caller's arguments, under the C function's contract (ours too).
                unsafe { f($($arg),*) }
            }
        )*
        fn $prefetch() {
            $( prefetch(&$name::PTR, concat!(stringify!($name), "\0"), None); )*
        }
    };
}

/// Functions looked up by symbol version (`dlvsym`), else as `dlsym` finds them.
macro_rules! real_versioned_fns {
    ($prefetch:ident; $( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $version:literal; )*) => {
        $(
            #[allow(non_snake_case)]
            mod $name {
                pub static PTR: super::AtomicUsize = super::AtomicUsize::new(0);
            }
            /// The next definition of the libc function (ours skipped).
            ///
            /// # Safety
            ///
            /// The C function's own contract.
            pub unsafe fn $name($($arg: $ty),*) -> $ret {
                let name = concat!(stringify!($name), "\0");
                prefetch(&$name::PTR, name, Some(concat!($version, "\0")));
                let p = cached(&$name::PTR, name);
                // SAFETY: `p` is the next definition of this libc symbol, whose C signature this is.
                let f: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(p) };
                // SAFETY: our caller's arguments, under the C function's contract (ours too).
                unsafe { f($($arg),*) }
            }
        )*
        fn $prefetch() {
            $( prefetch(&$name::PTR, concat!(stringify!($name), "\0"), Some(concat!($version, "\0"))); )*
        }
    };
}

/// Variadic C functions (`open` and friends): called as such, with the optional last argument.
macro_rules! real_variadic_fns {
    ($prefetch:ident; $( fn $name:ident($($arg:ident: $ty:ty),*; $va:ident: $vty:ty) -> $ret:ty; )*) => {
        $(
            #[allow(non_snake_case)]
            mod $name {
                pub static PTR: super::AtomicUsize = super::AtomicUsize::new(0);
            }
            /// The next definition of the libc function (ours skipped).
            ///
            /// # Safety
            ///
            /// The C function's own contract.
            pub unsafe fn $name($($arg: $ty,)* $va: $vty) -> $ret {
                let p = cached(&$name::PTR, concat!(stringify!($name), "\0"));
                // SAFETY: `p` is the next definition of this libc symbol, whose C signature this is.
                let f: unsafe extern "C" fn($($ty),*, ...) -> $ret = unsafe { std::mem::transmute(p) };
                // SAFETY: our caller's arguments; the optional one is read only when the flags say so.
                unsafe { f($($arg),*, $va) }
            }
        )*
        fn $prefetch() {
            $( prefetch(&$name::PTR, concat!(stringify!($name), "\0"), None); )*
        }
    };
}

/// Look every real function up now: before the fork server starts, so that no run does it
/// later inside a server's signal handler (`dlsym` is not async-signal-safe) or pays for it.
pub fn prefetch_all() {
    prefetch_calls();
    prefetch_cond();
    prefetch_open();
    prefetch_paths();
}

real_fns! {
    prefetch_calls;
    fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const libc::addrinfo, res: *mut *mut libc::addrinfo) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
    fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t;
    fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t;
    fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t;
    fn recvfrom(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> ssize_t;
    fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> ssize_t;
    fn close(fd: c_int) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
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
    fn pthread_exit(value: *mut c_void) -> !;
    fn _exit(status: c_int) -> !;
    fn poll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int) -> c_int;
    fn ppoll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: *const libc::timespec, mask: *const libc::sigset_t) -> c_int;
    fn select(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, timeout: *mut libc::timeval) -> c_int;
    fn pselect(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, timeout: *const libc::timespec, mask: *const libc::sigset_t) -> c_int;
    fn epoll_wait(epfd: c_int, events: *mut libc::epoll_event, max: c_int, timeout: c_int) -> c_int;
    fn epoll_pwait(epfd: c_int, events: *mut libc::epoll_event, max: c_int, timeout: c_int, mask: *const libc::sigset_t) -> c_int;
    fn sem_wait(sem: *mut libc::sem_t) -> c_int;
    fn sem_timedwait(sem: *mut libc::sem_t, abstime: *const libc::timespec) -> c_int;
    fn pthread_join(thread: libc::pthread_t, value: *mut *mut c_void) -> c_int;
    fn pause() -> c_int;
    fn sigsuspend(mask: *const libc::sigset_t) -> c_int;
    fn sigwait(set: *const libc::sigset_t, sig: *mut c_int) -> c_int;
    fn alarm(secs: libc::c_uint) -> libc::c_uint;
    fn ualarm(usecs: libc::useconds_t, interval: libc::useconds_t) -> libc::useconds_t;
    fn setitimer(which: c_int, new: *const libc::itimerval, old: *mut libc::itimerval) -> c_int;
    fn timer_settime(timer: libc::timer_t, flags: c_int, new: *const libc::itimerspec, old: *mut libc::itimerspec) -> c_int;
    fn timerfd_settime(fd: c_int, flags: c_int, new: *const libc::itimerspec, old: *mut libc::itimerspec) -> c_int;
}

// glibc keeps a pre-2.3.2 version of the condition variable calls, and plain `dlsym` may hand
// out that one: ask for the current version by name.
real_versioned_fns! {
    prefetch_cond;
    fn pthread_cond_wait(cond: *mut libc::pthread_cond_t, mutex: *mut libc::pthread_mutex_t) -> c_int = "GLIBC_2.3.2";
    fn pthread_cond_timedwait(cond: *mut libc::pthread_cond_t, mutex: *mut libc::pthread_mutex_t, abstime: *const libc::timespec) -> c_int = "GLIBC_2.3.2";
}

// Path functions (`paths`). Buffers are `*mut c_void`: only their address is passed on.
real_variadic_fns! {
    prefetch_open;
    fn open(path: *const c_char, flags: c_int; mode: c_uint) -> c_int;
    fn open64(path: *const c_char, flags: c_int; mode: c_uint) -> c_int;
    fn openat(dirfd: c_int, path: *const c_char, flags: c_int; mode: c_uint) -> c_int;
    fn openat64(dirfd: c_int, path: *const c_char, flags: c_int; mode: c_uint) -> c_int;
}

real_fns! {
    prefetch_paths;
    fn __open_2(path: *const c_char, flags: c_int) -> c_int;
    fn __open64_2(path: *const c_char, flags: c_int) -> c_int;
    fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int;
    fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int;
    fn creat(path: *const c_char, mode: libc::mode_t) -> c_int;
    fn creat64(path: *const c_char, mode: libc::mode_t) -> c_int;
    fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE;
    fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE;
    fn freopen(path: *const c_char, mode: *const c_char, stream: *mut libc::FILE) -> *mut libc::FILE;
    fn freopen64(path: *const c_char, mode: *const c_char, stream: *mut libc::FILE) -> *mut libc::FILE;
    fn opendir(path: *const c_char) -> *mut libc::DIR;
    fn stat(path: *const c_char, buf: *mut c_void) -> c_int;
    fn stat64(path: *const c_char, buf: *mut c_void) -> c_int;
    fn lstat(path: *const c_char, buf: *mut c_void) -> c_int;
    fn lstat64(path: *const c_char, buf: *mut c_void) -> c_int;
    fn fstatat(dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int;
    fn fstatat64(dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int;
    fn statx(dirfd: c_int, path: *const c_char, flags: c_int, mask: c_uint, buf: *mut c_void) -> c_int;
    fn access(path: *const c_char, mode: c_int) -> c_int;
    fn faccessat(dirfd: c_int, path: *const c_char, mode: c_int, flags: c_int) -> c_int;
    fn __xstat(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int;
    fn __xstat64(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int;
    fn __lxstat(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int;
    fn __lxstat64(ver: c_int, path: *const c_char, buf: *mut c_void) -> c_int;
    fn __fxstatat(ver: c_int, dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int;
    fn __fxstatat64(ver: c_int, dirfd: c_int, path: *const c_char, buf: *mut c_void, flags: c_int) -> c_int;
    fn realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char;
    fn __realpath_chk(path: *const c_char, resolved: *mut c_char, resolved_len: size_t) -> *mut c_char;
    fn canonicalize_file_name(path: *const c_char) -> *mut c_char;
}
