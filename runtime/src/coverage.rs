//! SanitizerCoverage callbacks and the coverage map they count into.
//!
//! * clang `-fsanitize-coverage=trace-pc-guard`: every edge has a `u32` guard; guards are
//!   numbered 1..=N at start-up and an edge bumps `map[*guard]`.
//! * gcc `-fsanitize-coverage=trace-pc`: no guards; `__sanitizer_cov_trace_pc()` hashes its
//!   return address (relative to the executable's load address, so runs agree under ASLR)
//!   into an AFL edge `map[cur ^ prev]`, `prev = cur >> 1`.
//!
//! The map is reached through `__afl_area_ptr`. It starts at a static 64 KiB array so that
//! instrumented code running before the fork server is harmless; the fork server points it
//! at the fuzzer's shared memory. Counters are bumped with a relaxed load + store (plain
//! `mov`s, like AFL's `map[i]++`, but without a data race in Rust's memory model).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, AtomicUsize, Ordering};

/// Size of the static start-up map and of the gcc `trace-pc` edge map (AFL's `MAP_SIZE`).
pub const DEFAULT_MAP_SIZE: usize = contract::MAP_SIZE;

static STARTUP_MAP: [AtomicU8; DEFAULT_MAP_SIZE] = [const { AtomicU8::new(0) }; DEFAULT_MAP_SIZE];

/// The live coverage map (AFL++'s name and C type `unsigned char *`, hence exported).
#[no_mangle]
pub static __afl_area_ptr: AtomicPtr<u8> = AtomicPtr::new(STARTUP_MAP.as_ptr() as *mut u8);

/// Bytes addressable at `__afl_area_ptr`. Every index the callbacks use is below it.
static MAP_CAPACITY: AtomicUsize = AtomicUsize::new(DEFAULT_MAP_SIZE);
/// Mask for `trace-pc` edges: a power of two minus one, below `MAP_CAPACITY`.
static PC_MASK: AtomicUsize = AtomicUsize::new(DEFAULT_MAP_SIZE - 1);
/// Cleared once the fork server has attached the shared map (which must not be replaced).
static GROWABLE: AtomicBool = AtomicBool::new(true);
/// Guards numbered so far: 1..=GUARDS (slot 0 is where switched-off guards count).
static GUARDS: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// Previous `trace-pc` location (shifted), per thread as in AFL.
    static PREV: Cell<usize> = const { Cell::new(0) };
}

extern "C" {
    /// Start of the executable's first segment, defined by the GNU ld / gold / lld scripts.
    static __executable_start: u8;
}

/// Map size to report to the fuzzer: guards rounded up to 64, or the `trace-pc` map.
pub fn map_size() -> usize {
    match GUARDS.load(Ordering::Relaxed) as usize {
        0 => DEFAULT_MAP_SIZE,
        n => (n + 1).div_ceil(64) * 64,
    }
}

/// Bytes addressable at `__afl_area_ptr`.
pub fn capacity() -> usize {
    MAP_CAPACITY.load(Ordering::Relaxed)
}

/// Point `__afl_area_ptr` at the fuzzer's map of `len` bytes (called once, by the fork server).
pub fn attach(map: *mut u8, len: usize) {
    GROWABLE.store(false, Ordering::Relaxed);
    __afl_area_ptr.store(map, Ordering::Relaxed);
    MAP_CAPACITY.store(len, Ordering::Relaxed);
    let pow2 = if len >= DEFAULT_MAP_SIZE { DEFAULT_MAP_SIZE } else { 1 << len.max(1).ilog2() };
    PC_MASK.store(pow2 - 1, Ordering::Relaxed);
}

#[inline(always)]
fn bump(index: usize) {
    let map = __afl_area_ptr.load(Ordering::Relaxed);
    // SAFETY: callers pass index < MAP_CAPACITY, and `map` points to MAP_CAPACITY live bytes
    // (static array, our mmap, or the shm), which are only accessed as atomics.
    let counter = unsafe { &*(map.add(index) as *const AtomicU8) };
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// clang: an edge was taken.
///
/// # Safety
///
/// `guard` points to one of the guards `__sanitizer_cov_trace_pc_guard_init` numbered (the
/// compiler's contract).
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn __sanitizer_cov_trace_pc_guard(guard: *const u32) {
    // SAFETY: the compiler passes a pointer into its guard section, which
    // `__sanitizer_cov_trace_pc_guard_init` numbered below MAP_CAPACITY (or set to 0).
    bump(unsafe { *guard } as usize);
}

/// clang: number the guards `start..stop` of one module (called from each module's constructor).
///
/// # Safety
///
/// `start..stop` is one module's guard section, valid for writes (the compiler's contract).
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn __sanitizer_cov_trace_pc_guard_init(start: *mut u32, stop: *mut u32) {
    if start >= stop {
        return;
    }
    // SAFETY: start..stop is the caller's guard section: aligned, writable, not yet shared
    // with other threads (module constructors run before the module's code).
    let guards = unsafe { std::slice::from_raw_parts_mut(start, stop.offset_from(start) as usize) };
    if guards[0] != 0 {
        return; // already numbered (the constructor can run twice)
    }
    let first = GUARDS.load(Ordering::Relaxed).wrapping_add(1);
    let last = first.wrapping_add(guards.len() as u32 - 1);
    grow_startup_map(last as usize + 1);
    let capacity = MAP_CAPACITY.load(Ordering::Relaxed);
    for (guard, number) in guards.iter_mut().zip(first..) {
        *guard = if (number as usize) < capacity { number } else { 0 };
    }
    GUARDS.store(last, Ordering::Relaxed);
}

/// Before the fork server: give the map `needed` bytes (more than 64 Ki guards is rare).
/// On failure the extra guards are switched off by the caller.
fn grow_startup_map(needed: usize) {
    if needed <= MAP_CAPACITY.load(Ordering::Relaxed) || !GROWABLE.load(Ordering::Relaxed) {
        return;
    }
    let len = needed.div_ceil(DEFAULT_MAP_SIZE) * DEFAULT_MAP_SIZE;
    let (prot, flags) = (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS);
    // SAFETY: a fresh anonymous mapping; no existing memory is touched.
    let map = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, -1, 0) };
    if map != libc::MAP_FAILED {
        __afl_area_ptr.store(map.cast(), Ordering::Relaxed);
        MAP_CAPACITY.store(len, Ordering::Relaxed);
    }
}

/// gcc: a basic block was entered. Naked so that it can pass its own return address on.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn __sanitizer_cov_trace_pc() {
    std::arch::naked_asm!("mov rdi, qword ptr [rsp]", "jmp {f}", f = sym trace_pc_from);
}

/// gcc: a basic block was entered. Naked so that it can pass its own return address on.
#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[no_mangle]
pub extern "C" fn __sanitizer_cov_trace_pc() {
    std::arch::naked_asm!("mov x0, x30", "b {f}", f = sym trace_pc_from);
}

extern "C" fn trace_pc_from(return_address: usize) {
    let base = (&raw const __executable_start) as usize;
    let offset = return_address.wrapping_sub(base) as u64;
    let cur = (offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize; // 16-bit hash
    let prev = PREV.get();
    PREV.set(cur >> 1);
    bump((cur ^ prev) & PC_MASK.load(Ordering::Relaxed));
}
