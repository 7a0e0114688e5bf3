//! Test cases of several connections (comux files, read by [`contract::comux`]) on the
//! fuzzer's side: [`case`] is a test case in an owned form that can be edited and written back,
//! [`play`] plays one over real TCP against a server started normally (`fuzzer send`).

pub mod case;
pub mod play;
