//! `[sockfuzz]` lines on stderr, written with one `write(2)` so threads do not interleave.

use std::io::Write;

/// Always printed: something the user must know (the run cannot go on as intended).
pub fn error(args: std::fmt::Arguments) {
    let mut line = Vec::with_capacity(128);
    let _ = writeln!(line, "[sockfuzz] {args}");
    // SAFETY: `line` is a valid buffer of `line.len()` bytes; fd 2 may be closed, which is harmless.
    unsafe { crate::real::write(2, line.as_ptr().cast(), line.len()) };
}

/// Printed only with `SOCKFUZZ_DEBUG=1`.
macro_rules! debug {
    ($($arg:tt)*) => {
        if $crate::state::config().debug { $crate::log::error(format_args!($($arg)*)) }
    };
}
pub(crate) use debug;
