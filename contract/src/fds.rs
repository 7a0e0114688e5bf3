//! Descriptor numbers fixed by the protocols: AFL++'s fork server, and the link between the fork
//! server and a persistent child (`SOCK_SEQPACKET`, the child's end at [`PERSIST_FD`]). The child
//! sends [`DONE`] when a test case ended normally and it can serve another, then waits for [`GO`].

/// Fuzzer to fork server: AFL++'s control pipe.
pub const FORKSRV_CONTROL: libc::c_int = 198;
/// Fork server to fuzzer: AFL++'s status pipe.
pub const FORKSRV_STATUS: libc::c_int = 199;
/// The persistent child's end of its link to the fork server.
pub const PERSIST_FD: libc::c_int = 197;
/// Child to fork server: the test case ended normally; ready for the next one.
pub const DONE: u8 = b'd';
/// Fork server to child: take the next test case.
pub const GO: u8 = b'g';
