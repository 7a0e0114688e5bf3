//! The CmpLog map: operands of the comparisons one run made, for LibAFL's input-to-state
//! (RedQueen) stages. The layout is AFL++'s `struct cmp_map`, as
//! `libafl_targets::AflppCmpLogMap` reads it (65536 × 32 entries):
//!
//! * `headers: [u16; W]`: bits 0-5 hits, 6-10 shape (operand size - 1), 11 kind (0 instruction,
//!   1 routine), 12-15 attribute;
//! * then `[[entry; 32]; W]` of 72 bytes each: an instruction entry has `v0` at byte 0 and `v1`
//!   at byte 32 (u64); a routine entry has `v0[32]`, `v1[32]`, `v0_len`, `v1_len`.
//!
//! The fuzzer passes the map only to the fork server it runs for tracing; everywhere else
//! nothing is attached and logging returns at once. The runtime and the preload each have
//! their own variable: a binary built by AFL++ has AFL++'s runtime, which reads
//! `__AFL_CMPLOG_SHM_ID` and writes its own version's layout (AFL++ 4.04c's is not this one), so
//! the fuzzer gives such a binary only the preload's. Comparison sites
//! are keyed by the caller's return address, which is stable across the runs of one fork server.
//!
//! Used by the runtime (instruction compares, `trace-cmp`) and by the LD_PRELOAD library
//! (string and memory compares).

use core::ffi::CStr;
use core::sync::atomic::{AtomicPtr, AtomicU16, AtomicU64, AtomicU8, Ordering};

const W: usize = 65536;
const H: usize = 32;
/// Routine entries LibAFL reads per site (`CMPLOG_MAP_RTN_H`).
const RTN_H: usize = 12;
const ENTRY: usize = 72;
const HEADERS: usize = 2 * W;
/// Bytes of the whole map.
pub const MAP_BYTES: usize = HEADERS + W * H * ENTRY;
/// Bytes logged per operand of a routine.
pub const RTN_LEN: usize = 32;

const KIND_INS: u16 = 0;
const KIND_RTN: u16 = 1;
const MAX_HITS: u16 = 63;

static MAP: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// Attach the map if the fuzzer passed one in `var`. False if it did but it cannot be used.
/// (The runtime reads [`crate::env::AFL_CMPLOG_SHM_ID`], the preload [`crate::env::CMPLOG_SHM_ID`].)
pub fn attach(var: &CStr) -> bool {
    if !MAP.load(Ordering::Relaxed).is_null() {
        return true;
    }
    match crate::sysv::attach(var) {
        Ok((map, len)) if len >= MAP_BYTES => {
            MAP.store(map, Ordering::Relaxed);
            true
        }
        Ok((map, _)) => {
            // SAFETY: attached just above and not used.
            unsafe { libc::shmdt(map.cast()) };
            false
        }
        Err(missing) => missing == crate::sysv::Missing::Unset,
    }
}

/// Whether comparisons are being logged (cheap: one load).
#[inline(always)]
pub fn enabled() -> bool {
    !MAP.load(Ordering::Relaxed).is_null()
}

fn site(caller: usize) -> usize {
    ((caller >> 4) ^ (caller << 8)) & (W - 1)
}

/// Count one hit of `site` and return the entry to fill. Every access is a relaxed atomic:
/// threads of the target may log at the same time (a lost update only loses one operand pair).
fn claim(map: *mut u8, site: usize, kind: u16, shape: usize, entries: usize) -> *mut u8 {
    // SAFETY: site < W, so the header is inside the map, and u16-aligned (shm is page-aligned).
    let header = unsafe { &*(map.add(2 * site) as *const AtomicU16) };
    let old = header.load(Ordering::Relaxed);
    let (hits, old_shape) = (old & MAX_HITS, (old >> 6) & 31);
    let shape = shape.min(31) as u16;
    let (slot, new) = if hits > 0 && (old >> 11) & 1 == kind {
        (usize::from(hits) % entries, (hits + 1).min(MAX_HITS) | old_shape.max(shape) << 6 | kind << 11)
    } else {
        (0, 1 | shape << 6 | kind << 11)
    };
    header.store(new, Ordering::Relaxed);
    // SAFETY: site < W and slot < H: inside the map.
    unsafe { map.add(HEADERS + (site * H + slot) * ENTRY) }
}

/// Log an integer comparison of `size` bytes made by the code at `caller`.
#[inline(always)]
pub fn log_ins(caller: usize, size: usize, v0: u64, v1: u64) {
    let map = MAP.load(Ordering::Relaxed);
    if map.is_null() {
        return;
    }
    let entry = claim(map, site(caller), KIND_INS, size - 1, H);
    // SAFETY: the entry is 72 bytes inside the map and 8-aligned (72·n past a 2·W header).
    unsafe {
        (*(entry as *const AtomicU64)).store(v0, Ordering::Relaxed);
        (*(entry.add(32) as *const AtomicU64)).store(v1, Ordering::Relaxed);
    }
}

/// Log a string or memory comparison made by the code at `caller`: at most [`RTN_LEN`] bytes
/// of each operand.
pub fn log_rtn(caller: usize, v0: &[u8], v1: &[u8]) {
    let map = MAP.load(Ordering::Relaxed);
    if map.is_null() {
        return;
    }
    let (v0, v1) = (&v0[..v0.len().min(RTN_LEN)], &v1[..v1.len().min(RTN_LEN)]);
    if v0.is_empty() && v1.is_empty() {
        return;
    }
    let entry = claim(map, site(caller), KIND_RTN, v0.len().max(v1.len()) - 1, RTN_H);
    // SAFETY: the entry is 72 bytes inside the map: v0 at 0..32, v1 at 32..64, lengths at 64, 65.
    let byte = |offset: usize| unsafe { &*(entry.add(offset) as *const AtomicU8) };
    for (offset, value) in [(0, v0), (RTN_LEN, v1)] {
        for i in 0..RTN_LEN {
            byte(offset + i).store(value.get(i).copied().unwrap_or(0), Ordering::Relaxed);
        }
    }
    byte(2 * RTN_LEN).store(v0.len() as u8, Ordering::Relaxed);
    byte(2 * RTN_LEN + 1).store(v1.len() as u8, Ordering::Relaxed);
}

/// `extern "C" fn $name(a, b[, c])` (naked) that jumps to `$target(a, b[, c], return address)`:
/// the comparison site, without the unstable `return_address` intrinsic.
#[macro_export]
macro_rules! with_caller {
    ($(#[$attr:meta])* $name:ident => $target:path, args: 2) => {
        $crate::with_caller!(@emit $(#[$attr])* $name, $target, "mov rdx, qword ptr [rsp]", "mov x2, x30");
    };
    ($(#[$attr:meta])* $name:ident => $target:path, args: 3) => {
        $crate::with_caller!(@emit $(#[$attr])* $name, $target, "mov rcx, qword ptr [rsp]", "mov x3, x30");
    };
    (@emit $(#[$attr:meta])* $name:ident, $target:path, $x86:literal, $arm:literal) => {
        $(#[$attr])*
        #[unsafe(naked)]
        #[no_mangle]
        pub extern "C" fn $name() {
            #[cfg(target_arch = "x86_64")]
            ::core::arch::naked_asm!($x86, "jmp {f}", f = sym $target);
            #[cfg(target_arch = "aarch64")]
            ::core::arch::naked_asm!($arm, "b {f}", f = sym $target);
        }
    };
}
