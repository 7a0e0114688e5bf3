//! The server's memory limit, as AFL++'s `-m`: `SOCKFUZZ_MEM_LIMIT_MB` (default
//! [`DEFAULT_MEM_LIMIT_MB`], 0: none) caps its address space, so a request that makes it
//! allocate gigabytes gets NULL from `malloc`, as on a full machine, instead of the machine's
//! memory. An AddressSanitizer build reserves terabytes of address space for its shadow memory:
//! there ASan's own `max_allocation_size_mb` (in `ASAN_OPTIONS`, set by the fuzzer) caps each
//! allocation instead.

use contract::env;

pub const DEFAULT_MEM_LIMIT_MB: u64 = 2048;

/// Lower the address-space limit to the one asked for (never raise it).
pub fn apply() {
    // SAFETY: NUL-terminated names; getenv and dlsym only read.
    let (var, asan) = unsafe {
        (libc::getenv(env::MEM_LIMIT_MB.as_ptr()), !libc::dlsym(libc::RTLD_DEFAULT, c"__asan_init".as_ptr()).is_null())
    };
    let mb = if var.is_null() {
        Some(DEFAULT_MEM_LIMIT_MB)
    } else {
        // SAFETY: getenv returned a NUL-terminated string that lives as long as the environment.
        unsafe { std::ffi::CStr::from_ptr(var) }.to_str().ok().and_then(|v| v.trim().parse().ok())
    };
    let Some(mb) = mb else {
        crate::log::error(format_args!("SOCKFUZZ_MEM_LIMIT_MB is not a number of megabytes: no memory limit"));
        return;
    };
    if mb == 0 || asan {
        return;
    }
    let bytes = mb.saturating_mul(1 << 20);
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is valid storage for getrlimit; setrlimit only lowers this process's soft limit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_AS, &mut limit) == 0 && limit.rlim_cur > bytes {
            limit.rlim_cur = bytes;
            libc::setrlimit(libc::RLIMIT_AS, &limit);
        }
    }
}
