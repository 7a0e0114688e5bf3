//! SanitizerCoverage `trace-cmp` callbacks: integer comparisons and `switch`es, logged into the
//! CmpLog map when the fuzzer traces this process (see `contract::cmplog`), otherwise ignored.

use contract::cmplog::log_ins;
use contract::with_caller;

macro_rules! cmp_callbacks {
    ($($name:ident, $const_name:ident => $log:ident($ty:ty);)*) => {$(
        with_caller!(#[doc = "An integer comparison."] $name => $log, args: 2);
        with_caller!(#[doc = "An integer comparison with a constant (the first operand)."] $const_name => $log, args: 2);
        extern "C" fn $log(a: $ty, b: $ty, caller: usize) {
            log_ins(caller, size_of::<$ty>(), a.into(), b.into());
        }
    )*};
}

cmp_callbacks! {
    __sanitizer_cov_trace_cmp1, __sanitizer_cov_trace_const_cmp1 => cmp1(u8);
    __sanitizer_cov_trace_cmp2, __sanitizer_cov_trace_const_cmp2 => cmp2(u16);
    __sanitizer_cov_trace_cmp4, __sanitizer_cov_trace_const_cmp4 => cmp4(u32);
    __sanitizer_cov_trace_cmp8, __sanitizer_cov_trace_const_cmp8 => cmp8(u64);
}

with_caller!(#[doc = "A `switch`: `cases` is `[count, bits, case values...]`."] __sanitizer_cov_trace_switch => switch, args: 2);

extern "C" fn switch(value: u64, cases: *const u64, caller: usize) {
    if !contract::cmplog::enabled() {
        return;
    }
    // SAFETY: the compiler passes its constant table: count, operand bits, then `count` values.
    let (count, bits) = unsafe { (*cases as usize, *cases.add(1) as usize) };
    for i in 0..count {
        // SAFETY: i < count, within the table. Each case is its own site (caller + i).
        log_ins(caller + i, (bits / 8).max(1), value, unsafe { *cases.add(2 + i) });
    }
}

/// gcc: a floating-point comparison (not logged: input-to-state replaces integers and bytes).
#[no_mangle]
pub extern "C" fn __sanitizer_cov_trace_cmpf(_: f32, _: f32) {}

/// gcc: a double comparison (not logged).
#[no_mangle]
pub extern "C" fn __sanitizer_cov_trace_cmpd(_: f64, _: f64) {}
