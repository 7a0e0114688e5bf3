//! Attaching the fuzzer's coverage map: the SysV shared memory segment named by `__AFL_SHM_ID`.
//!
//! As in AFL++'s runtime this happens whenever the variable is set, fork server or not:
//! afl-showmap / afl-tmin run the program directly and read the map afterwards.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::coverage;

/// Outcome of [`attach`], decided once per process.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Shm {
    /// `__AFL_SHM_ID` is not set: not under a fuzzer.
    Unset = 1,
    /// `__AFL_SHM_ID` is set but is not an attachable segment (a warning was printed).
    Unusable,
    /// The segment is smaller than [`coverage::map_size`] (a warning was printed).
    TooSmall,
    /// `__afl_area_ptr` points at the fuzzer's map.
    Attached,
}

static STATE: AtomicU8 = AtomicU8::new(0);

/// Attach the map if `__AFL_SHM_ID` asks for it (idempotent: later calls return the outcome).
pub fn attach() -> Shm {
    let state = match STATE.load(Ordering::Relaxed) {
        0 => try_attach(),
        1 => Shm::Unset,
        2 => Shm::Unusable,
        3 => Shm::TooSmall,
        _ => Shm::Attached,
    };
    STATE.store(state as u8, Ordering::Relaxed);
    state
}

fn try_attach() -> Shm {
    // SAFETY: the marker is NUL-terminated; getenv only reads the environment.
    let id = unsafe { libc::getenv(crate::__sockfuzz_shm_marker.as_ptr().cast()) };
    if id.is_null() {
        return Shm::Unset;
    }
    // SAFETY: getenv returned a NUL-terminated string that nobody modifies meanwhile.
    let Some((id, len)) = parse_id(unsafe { CStr::from_ptr(id) }.to_bytes()).and_then(segment_size) else {
        warn(b"__AFL_SHM_ID is not a shared memory id: no coverage\n");
        return Shm::Unusable;
    };
    if coverage::map_size() > len {
        warn(b"the coverage map in __AFL_SHM_ID is smaller than this program needs: no coverage\n");
        return Shm::TooSmall;
    }
    // SAFETY: `id` names an existing segment (segment_size checked it); the kernel picks the address.
    let map = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if map as isize == -1 {
        warn(b"shmat(__AFL_SHM_ID) failed: no coverage\n");
        return Shm::Unusable;
    }
    coverage::attach(map.cast(), len);
    Shm::Attached
}

/// Decimal shm id. (Hand-written: `str::parse` would pull all of Rust's std into the binary.)
fn parse_id(digits: &[u8]) -> Option<libc::c_int> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0, |id: libc::c_int, &d| {
        let digit = d.checked_sub(b'0').filter(|&d| d <= 9)?;
        id.checked_mul(10)?.checked_add(libc::c_int::from(digit))
    })
}

/// `(id, size in bytes)` of an existing SysV shared memory segment.
fn segment_size(id: libc::c_int) -> Option<(libc::c_int, usize)> {
    // SAFETY: an all-zero shmid_ds is valid; IPC_STAT only fills it in.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: ds is a valid, writable shmid_ds.
    (unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } == 0).then_some((id, ds.shm_segsz))
}

/// Print `fuzzing runtime: <message>` to stderr.
pub fn warn(message: &[u8]) {
    const PREFIX: &[u8] = b"fuzzing runtime: ";
    // SAFETY: writes from valid buffers of the given lengths.
    unsafe {
        libc::write(2, PREFIX.as_ptr().cast(), PREFIX.len());
        libc::write(2, message.as_ptr().cast(), message.len());
    }
}
