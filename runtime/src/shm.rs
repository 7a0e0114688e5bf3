//! Attaching the fuzzer's coverage map: the SysV shared memory segment named by `__AFL_SHM_ID`.
//!
//! As in AFL++'s runtime this happens whenever the variable is set, fork server or not:
//! afl-showmap / afl-tmin run the program directly and read the map afterwards.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::coverage;
use contract::sysv::{self, Missing};

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
    // SAFETY: the marker is a NUL-terminated string without inner NULs.
    let var = unsafe { CStr::from_ptr(crate::__sockfuzz_shm_marker.as_ptr().cast()) };
    let (map, len) = match sysv::attach(var) {
        Ok(segment) => segment,
        Err(Missing::Unset) => return Shm::Unset,
        Err(Missing::Unusable) => {
            warn(b"__AFL_SHM_ID is not an attachable shared memory id: no coverage\n");
            return Shm::Unusable;
        }
    };
    if coverage::map_size() > len {
        // SAFETY: `map` was attached just above and nothing uses it.
        unsafe { libc::shmdt(map.cast()) };
        warn(b"the coverage map in __AFL_SHM_ID is smaller than this program needs: no coverage\n");
        return Shm::TooSmall;
    }
    coverage::attach(map, len);
    Shm::Attached
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
