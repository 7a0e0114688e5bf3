//! String and memory comparisons (`strcmp`, `strncmp`, `strcasecmp`, `strncasecmp`, `memcmp`,
//! `bcmp`): when the fuzzer traces this process, their operands go into the CmpLog map as
//! "routine" entries (up to 32 bytes each, C strings with their NUL, as AFL++ logs them), so
//! the input-to-state stage can copy the string the server expected into the input. Otherwise
//! each hook costs one load before the real function.

use crate::real;
use contract::cmplog::{enabled, log_rtn, RTN_LEN};
use contract::with_caller;
use libc::{c_char, c_int, size_t};

/// The first bytes of the C string at `s`: through its NUL, at most `max` (≤ RTN_LEN).
///
/// # Safety
///
/// `s` points to a NUL-terminated string or to at least `max` readable bytes (the
/// comparison functions' own contract).
unsafe fn c_prefix<'a>(s: *const c_char, max: usize) -> &'a [u8] {
    // SAFETY: strnlen reads no further than the NUL or `max` bytes; both are readable.
    let len = unsafe { libc::strnlen(s, max) };
    // SAFETY: `len` bytes, plus the NUL when it is within `max`, were just found readable.
    unsafe { std::slice::from_raw_parts(s.cast(), (len + 1).min(max)) }
}

macro_rules! string_hooks {
    ($($name:ident => $from:ident;)*) => {$(
        with_caller!(#[doc = "Logs its operands, then compares."] $name => $from, args: 2);
        /// # Safety
        ///
        /// Both operands are C strings (the comparison's own contract).
        unsafe extern "C" fn $from(a: *const c_char, b: *const c_char, caller: usize) -> c_int {
            if enabled() {
                // SAFETY: both are C strings (the caller's contract).
                unsafe { log_rtn(caller, c_prefix(a, RTN_LEN), c_prefix(b, RTN_LEN)) };
            }
            // SAFETY: same arguments as our caller passed.
            unsafe { real::$name(a, b) }
        }
    )*};
}

macro_rules! bounded_hooks {
    ($($name:ident => $from:ident, $operand:ident;)*) => {$(
        with_caller!(#[doc = "Logs its operands, then compares."] $name => $from, args: 3);
        /// # Safety
        ///
        /// Both operands are readable as the comparison reads them (its own contract).
        unsafe extern "C" fn $from(a: *const c_char, b: *const c_char, n: size_t, caller: usize) -> c_int {
            if enabled() && n > 0 {
                // SAFETY: both operands are readable as the function reads them (the caller's contract).
                unsafe { log_rtn(caller, $operand(a, n.min(RTN_LEN)), $operand(b, n.min(RTN_LEN))) };
            }
            // SAFETY: same arguments as our caller passed.
            unsafe { real::$name(a.cast(), b.cast(), n) }
        }
    )*};
}

/// `n` bytes at `p` (memcmp's operands are plain memory).
///
/// # Safety
///
/// `p` points to at least `n` readable bytes that outlive `'a`.
unsafe fn bytes<'a>(p: *const c_char, n: usize) -> &'a [u8] {
    // SAFETY: the caller of memcmp guarantees `n` readable bytes.
    unsafe { std::slice::from_raw_parts(p.cast(), n) }
}

string_hooks! {
    strcmp => strcmp_from;
    strcasecmp => strcasecmp_from;
}

bounded_hooks! {
    strncmp => strncmp_from, c_prefix;
    strncasecmp => strncasecmp_from, c_prefix;
    memcmp => memcmp_from, bytes;
    bcmp => bcmp_from, bytes;
}
