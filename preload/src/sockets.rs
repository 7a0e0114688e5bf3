//! Our client sockets: made, connected without blocking, and recognized by their ports when
//! the server accepts them (each of a test case's connections once).

use crate::log::debug;
use crate::{end, fds, shared};
use libc::c_int;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering::SeqCst;

/// A new socket for the client, one of ours (`fds`).
pub fn socket(addr: SocketAddr) -> c_int {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket has no preconditions; failure is checked.
    let sock = fds::adopt(unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) });
    if sock < 0 {
        let e = std::io::Error::last_os_error();
        end::cannot_drive(format_args!("cannot create the client's socket: {e}"));
    }
    sock
}

/// The address to connect to: the listener's own, with a wildcard mapped to loopback.
pub fn connect_addr(fd: c_int) -> Option<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss` has room for any socket address; `len` says so.
    if unsafe { libc::getsockname(fd, (&raw mut ss).cast(), &mut len) } != 0 {
        return None;
    }
    let mut addr = sockaddr_to_std(&ss)?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Some(addr)
}

fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::from((u32::from_be(a.sin_addr.s_addr).to_be_bytes(), u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::from((a.sin6_addr.s6_addr, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}

/// Which of this test case's connections the accepted socket `conn` is (by its port), if it is
/// one that was not accepted before; None for a leftover of an earlier run.
pub fn is_ours(conn: c_int) -> Option<usize> {
    // SAFETY: as in `connect_addr`.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as in `connect_addr`.
    let shared = shared::get();
    // SAFETY: as in `connect_addr`.
    if unsafe { libc::getpeername(conn, (&raw mut ss).cast(), &mut len) } != 0 {
        // Reset before it was accepted: one of ours if we reset one that is not claimed yet.
        loop {
            let (reset, claimed) = (shared.reset.load(SeqCst), shared.claimed.load(SeqCst));
            let unclaimed = reset & !claimed;
            if unclaimed == 0 {
                return None;
            }
            let bit = unclaimed & unclaimed.wrapping_neg();
            if shared.claimed.fetch_or(bit, SeqCst) & bit == 0 {
                return Some(bit.trailing_zeros() as usize);
            }
        }
    }
    let port = i32::from(sockaddr_to_std(&ss)?.port());
    loop {
        // Read before looking: a connect that was accepted has started, so either it is still
        // counted here or its port is published (`publish_port` stores it before uncounting).
        let connecting = shared.connecting.load(SeqCst);
        if let Some(index) = shared.ports.iter().position(|p| p.load(SeqCst) == port) {
            let bit = 1u64 << index;
            return (shared.claimed.fetch_or(bit, SeqCst) & bit == 0).then_some(index);
        }
        if connecting == 0 {
            return None;
        }
        // The connect may complete (and be accepted) before the client thread has published its
        // port: sleep until it has, not yield, which can hand the core to another process for a
        // whole time slice. Not a private futex: a pre-forked worker may be the one waiting, on
        // the run's shared page.
        // SAFETY: FUTEX_WAIT reads the u32 at a valid, aligned address mapped in this process
        // and sleeps while it holds `connecting`, at most the timeout; its result is not needed.
        unsafe {
            let timeout = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000 };
            libc::syscall(
                libc::SYS_futex,
                shared.connecting.as_ptr(),
                libc::FUTEX_WAIT,
                connecting,
                &raw const timeout,
            );
        }
    }
}

/// Connection `index` is reset by the client: recognize it without its peer address.
pub fn note_reset(index: usize) {
    shared::get().reset.fetch_or(1 << index, SeqCst);
}

/// Connect our socket `fd` for connection `index` without blocking (the connect completes in
/// the background; writes wait for it), and publish its port for `is_ours`.
pub fn open(index: usize, fd: c_int, addr: SocketAddr) -> std::io::Result<()> {
    let shared = shared::get();
    shared.connecting.fetch_add(1, SeqCst);
    // SAFETY: F_SETFL on our own socket.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    let result = match connect(fd, addr) {
        Err(e) if e.raw_os_error() != Some(libc::EINPROGRESS) => Err(e),
        _ => Ok(()),
    };
    let port = local_port(fd);
    debug!("connection {index} from port {port}");
    publish_port(index, port);
    result
}

/// The local port of our socket `fd` (0 if it has none).
fn local_port(fd: c_int) -> i32 {
    // SAFETY: as in `connect_addr`.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as in `connect_addr`.
    if unsafe { libc::getsockname(fd, (&raw mut ss).cast(), &mut len) } != 0 {
        return 0;
    }
    sockaddr_to_std(&ss).map_or(0, |a| i32::from(a.port()))
}

/// Publish connection `index`'s port and wake server threads waiting in `is_ours`.
fn publish_port(index: usize, port: i32) {
    let shared = shared::get();
    if let Some(slot) = shared.ports.get(index) {
        slot.store(port, SeqCst);
    }
    shared.connecting.fetch_sub(1, SeqCst);
    // SAFETY: FUTEX_WAKE on the address of a mapped u32; it touches no memory.
    unsafe { libc::syscall(libc::SYS_futex, shared.connecting.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// Connect our socket `fd` to `addr` (blocking, as `TcpStream::connect`).
fn connect(fd: c_int, addr: SocketAddr) -> std::io::Result<()> {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage has room and alignment for a sockaddr_in.
            let sin = unsafe { &mut *(&raw mut ss).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage has room and alignment for a sockaddr_in6.
            let sin6 = unsafe { &mut *(&raw mut ss).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    // No EINTR to retry: the client thread blocks every signal.
    // SAFETY: `ss` holds a valid address of `len` bytes for the socket's family.
    match unsafe { libc::connect(fd, (&raw const ss).cast(), len as libc::socklen_t) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
