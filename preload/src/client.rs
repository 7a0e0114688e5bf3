//! The client thread: one real loopback connection to the server's own listening socket.

use crate::log::{debug, error};
use crate::state::*;
use crate::{real, settle, EXIT_SETUP};
use libc::c_int;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::SeqCst;

/// Called in the server's thread right after its first successful `listen(fd)`.
pub fn start(listen_fd: c_int) {
    LISTEN_FD.store(listen_fd, SeqCst);
    let config = config();
    let addr = connect_addr(listen_fd);
    if let Some(fd) = config.status_fd {
        let port = addr.map_or(0, |a| a.port()).to_be_bytes();
        let status = [b'L', port[0], port[1]];
        // SAFETY: writing 3 bytes from a local array; a closed fd only makes this fail.
        unsafe { real::write(fd, status.as_ptr().cast(), status.len()) };
    }
    let Some(addr) = addr else {
        error(format_args!("cannot read the address of the listening socket (fd {listen_fd})"));
        settle::exit(EXIT_SETUP);
    };
    debug!("server listens (fd {listen_fd}); connecting to {addr}");
    // SAFETY: registering a plain `extern "C" fn()`.
    unsafe { libc::atexit(exited_early) };
    let spawned = std::thread::Builder::new().name("sockfuzz".into()).spawn(move || run(addr));
    if let Err(e) = spawned {
        error(format_args!("cannot start the client thread: {e}"));
        settle::exit(EXIT_SETUP);
    }
}

/// The address to connect to: the listener's own, with a wildcard mapped to loopback.
fn connect_addr(fd: c_int) -> Option<SocketAddr> {
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

/// Whether the accepted socket `conn` is this run's client (by its port), not a leftover.
pub fn is_ours(conn: c_int) -> bool {
    // SAFETY: as in `connect_addr`.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as in `connect_addr`.
    if unsafe { libc::getpeername(conn, (&raw mut ss).cast(), &mut len) } != 0 {
        return false;
    }
    let Some(peer) = sockaddr_to_std(&ss) else { return false };
    // The connect may complete (and be accepted) before the client thread has published its port.
    loop {
        match CLIENT_PORT.load(SeqCst) {
            0 => std::thread::yield_now(),
            port => return port == i32::from(peer.port()),
        }
    }
}

extern "C" fn exited_early() {
    if !ACCEPTED.load(SeqCst) && !IN_SERVER_CHILD.load(SeqCst) {
        error(format_args!(
            "the server exited after listening but before accepting the connection: no request was sent"
        ));
    }
}

fn run(addr: SocketAddr) -> ! {
    let input = read_input();
    let mut sock = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            CLIENT_PORT.store(-1, SeqCst);
            error(format_args!("cannot connect to the server's listening socket {addr}: {e}"));
            settle::exit(EXIT_SETUP);
        }
    };
    let port = sock.local_addr().map_or(-1, |a| i32::from(a.port()));
    CLIENT_PORT.store(port, SeqCst);
    debug!("connected from port {port}; sending {} bytes", input.len());
    exchange(&mut sock, &input);
    debug!("server closed the connection");
    settle::end_run();
}

/// The test case: all of stdin.
fn read_input() -> Vec<u8> {
    let mut input = Vec::new();
    // SAFETY: fd 0 stays open for the life of the process; ManuallyDrop keeps it open.
    let mut stdin = std::mem::ManuallyDrop::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(0) });
    if let Err(e) = stdin.read_to_end(&mut input) {
        debug!("reading stdin failed after {} bytes: {e}", input.len());
    }
    input
}

/// Send `input` and read the reply to EOF at the same time (a server may answer, or close,
/// before it has read everything), half-closing once all is sent.
fn exchange(sock: &mut TcpStream, input: &[u8]) {
    let output = config().output;
    let fd = sock.as_raw_fd();
    let _ = sock.set_nonblocking(true);
    let mut sent = 0;
    let mut writing = true;
    if input.is_empty() {
        let _ = sock.shutdown(std::net::Shutdown::Write);
        writing = false;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let events = libc::POLLIN | if writing { libc::POLLOUT } else { 0 };
        let mut pfd = libc::pollfd { fd, events, revents: 0 };
        // Wake up now and then to notice a forked child that exited while its parent still
        // holds the connection open.
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 20) };
        if ready == 0 {
            if settle::child_exited() {
                return;
            }
            continue;
        }
        if writing && pfd.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0 {
            match sock.write(&input[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(_) => writing = false, // the server stopped reading: just read what it says
            }
            if writing && sent == input.len() {
                let _ = sock.shutdown(std::net::Shutdown::Write);
                writing = false;
            }
        }
        if pfd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
            match sock.read(&mut buf) {
                Ok(0) => return,
                Ok(n) if output => write_stdout(&buf[..n]),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return, // ECONNRESET and the like: the connection is over
            }
        }
    }
}

fn write_stdout(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer; a closed or full stdout only makes this fail.
        let n = unsafe { real::write(1, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
