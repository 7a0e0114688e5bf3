//! Attaching a SysV shared memory segment named by an environment variable (AFL++'s way of
//! handing maps to the target: `__AFL_SHM_ID`, `__AFL_CMPLOG_SHM_ID`).

use core::ffi::CStr;

/// Why a segment could not be attached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The variable is not set: not under a fuzzer (or not asked for this map).
    Unset,
    /// The variable does not name an attachable segment.
    Unusable,
}

/// Attach the segment whose decimal id is in `$var`: `(address, size in bytes)`.
pub fn attach(var: &CStr) -> Result<(*mut u8, usize), Missing> {
    // SAFETY: `var` is NUL-terminated; getenv only reads the environment.
    let id = unsafe { libc::getenv(var.as_ptr()) };
    if id.is_null() {
        return Err(Missing::Unset);
    }
    // SAFETY: getenv returned a NUL-terminated string that nobody modifies meanwhile.
    let (id, len) =
        parse_id(unsafe { CStr::from_ptr(id) }.to_bytes()).and_then(segment_size).ok_or(Missing::Unusable)?;
    // SAFETY: `id` names an existing segment (segment_size checked it); the kernel picks the address.
    let map = unsafe { libc::shmat(id, core::ptr::null(), 0) };
    if map as isize == -1 {
        return Err(Missing::Unusable);
    }
    Ok((map.cast(), len))
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
    let mut ds: libc::shmid_ds = unsafe { core::mem::zeroed() };
    // SAFETY: ds is a valid, writable shmid_ds.
    (unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } == 0).then_some((id, ds.shm_segsz))
}
