//! `[sockfuzz]` lines on stderr, written with one `write(2)` so threads do not interleave.

use std::io::Write;

/// Always printed: something the user must know (the run cannot go on as intended).
pub fn error(args: std::fmt::Arguments) {
    let mut line = Vec::with_capacity(128);
    let _ = writeln!(line, "[sockfuzz] {args}");
    // SAFETY: `line` is a valid buffer of `line.len()` bytes; fd 2 may be closed, which is harmless.
    unsafe { crate::real::write(2, line.as_ptr().cast(), line.len()) };
}

/// Like [`error`] for raw byte strings (paths need not be UTF-8), without allocating: for hooks.
pub fn error_bytes(parts: &[&[u8]]) {
    const MAX: usize = 14;
    let iov = |s: &[u8]| libc::iovec { iov_base: s.as_ptr() as *mut _, iov_len: s.len() };
    let mut v = [iov(b""); MAX + 2];
    v[0] = iov(b"[sockfuzz] ");
    let n = parts.len().min(MAX);
    for (slot, part) in v[1..].iter_mut().zip(&parts[..n]) {
        *slot = iov(part);
    }
    v[n + 1] = iov(b"\n");
    // SAFETY: the first n + 2 iovecs point into live slices; writev only reads them.
    unsafe { libc::writev(2, v.as_ptr(), (n + 2) as libc::c_int) };
}

/// Printed only with `SOCKFUZZ_DEBUG=1`.
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::state::config().debug { $crate::log::error(format_args!($($arg)*)) }
    };
}
pub(crate) use debug;
