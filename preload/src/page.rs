//! A value kept in a page shared with the processes forked after it is mapped: the runs of the
//! fork server (`descriptor_leaks`' memo, `memory_leaks`' budget, mapped before it starts) or a
//! run's own processes (`shared`, mapped at the start of the run). Until then, and if `mmap`
//! fails, a process-local value stands in.

use std::sync::atomic::AtomicPtr;
use std::sync::atomic::Ordering::SeqCst;

/// # Safety
///
/// All-zero bytes are a valid value of the type (integers and atomics only), as the kernel
/// zeroes a new page.
pub unsafe trait ZeroIsValid {}

pub struct Page<T: ZeroIsValid + 'static> {
    local: T,
    page: AtomicPtr<T>,
}

impl<T: ZeroIsValid + Sync> Page<T> {
    pub const fn new(local: T) -> Self {
        Page { local, page: AtomicPtr::new(std::ptr::null_mut()) }
    }

    pub fn get(&self) -> &T {
        let page = self.page.load(SeqCst);
        if page.is_null() {
            &self.local
        } else {
            // SAFETY: a non-null pointer is a shared mapping of at least size_of::<T>() bytes,
            // zeroed by the kernel (a valid T, `ZeroIsValid`), never unmapped.
            unsafe { &*page }
        }
    }

    /// Map a fresh page (zeroed): from now on this process and what it forks share the value.
    pub fn map(&self) {
        // SAFETY: an anonymous shared mapping at an address of the kernel's choosing; no memory
        // of ours is touched. MAP_FAILED is checked.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size_of::<T>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page != libc::MAP_FAILED {
            self.page.store(page.cast(), SeqCst);
        }
    }
}
