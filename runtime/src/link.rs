//! The link between the fork server and a persistent child (shared with the preload, which is
//! the child's side): a `SOCK_SEQPACKET` socket at [`PERSIST_FD`] in the child. The child sends
//! [`DONE`] when a test case ended normally and it can serve another, then waits for [`GO`].

/// The child's end of the link.
pub const PERSIST_FD: libc::c_int = 197;
/// Child to fork server: the test case ended normally; ready for the next one.
pub const DONE: u8 = b'd';
/// Fork server to child: take the next test case.
pub const GO: u8 = b'g';
