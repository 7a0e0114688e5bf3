//! The contract between the three crates: the fuzzer (`fuzzer`), the preload library inside the
//! server (`sockfuzz`, `libsockfuzz.so`) and the runtime linked into it (`runtime`). What one
//! side writes and another reads is written down here once: the verdicts a run ends with, the
//! descriptors and shared pages they talk through, the CmpLog map's layout and the names of the
//! environment variables.
//!
//! `no_std` and libc only, with no allocation and no panics: the runtime is linked into the C
//! program, where one call into Rust's std would pull all of it in (see `runtime/src/lib.rs`).
#![no_std]

pub mod cmplog;
pub mod comux;
pub mod control;
pub mod env;
pub mod fds;
pub mod states;
pub mod sysv;
pub mod verdicts;

/// Bytes of the coverage map the fuzzer gives the server (`__AFL_SHM_ID`), AFL's `MAP_SIZE`;
/// also the runtime's start-up map and its gcc `trace-pc` edge map.
pub const MAP_SIZE: usize = 1 << 16;
