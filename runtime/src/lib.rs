//! Target runtime, linked into the fuzzed C program by `fuzzer-cc`.
//!
//! * `coverage`: SanitizerCoverage callbacks that count edges in an AFL-style map
//!   (`trace-pc-guard` from clang, `trace-pc` from gcc) through `__afl_area_ptr`.
//! * `forkserver`: the AFL++ fork server, old protocol (afl-fuzz < 4.20c, and LibAFL's
//!   `ForkserverExecutor`), started by a constructor or, with `__AFL_DEFER_FORKSRV` set,
//!   by `__afl_manual_init()` (called by the LD_PRELOAD library).
//! * `shm`: attaching the fuzzer's coverage map (`__AFL_SHM_ID`), with or without fork server.
//! * `cmplog`: `trace-cmp` callbacks logging integer comparisons into the CmpLog map
//!   (`contract::cmplog`, `__AFL_CMPLOG_SHM_ID`) for LibAFL's input-to-state stages.
//!
//! What the fuzzer and the preload read of it (descriptors, variables, map layouts) is in the
//! `contract` crate.
//!
//! Only `libc` is used; the callbacks never allocate or panic. Keep it that way: one call into a
//! non-inlined `core`/`std` function (`str::parse`, `io::Error`, formatting) makes the linker
//! pull Rust's whole std into the C program (19 KiB -> 5 MB, plus `libgcc_s`). Symbols the linker must keep
//! (the wrapper passes `-Wl,-u,NAME` for each): `__afl_manual_init`,
//! `sockfuzz_start_forkserver`, `sockfuzz_shm_input`, `__sockfuzz_init`, `__sockfuzz_shm_marker`, `__afl_area_ptr`,
//! and the three `__sanitizer_cov_*` callbacks.

mod cmplog;
mod coverage;
mod forkserver;
mod shm;

/// The NUL-terminated string afl-fuzz looks for in the binary ("is it instrumented?").
/// It is also the name the fork server passes to `getenv`, so it is always referenced.
#[used]
#[no_mangle]
pub static __sockfuzz_shm_marker: [u8; 13] = *b"__AFL_SHM_ID\0";
