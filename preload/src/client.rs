//! The client thread: one real loopback connection to the server's own listening socket.

use crate::log::debug;
use crate::state::*;
use crate::{end, fds, idle, real, settle, shared};
use contract::verdicts::{EXIT_IDLE, EXIT_STUCK};
use libc::c_int;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::SeqCst;

/// The status pipe (`SOCKFUZZ_STATUS_FD`) once the server listens: the reply goes there.
static STATUS_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// Called in the server's thread right after its first successful `listen(fd)`.
pub fn start(listen_fd: c_int) {
    shared::create();
    LISTEN_FD.store(listen_fd, SeqCst);
    let config = config();
    let addr = connect_addr(listen_fd);
    if let Some(fd) = config.status_fd {
        // `L`, the port and the pid of the process that listens (a daemon is not the one
        // started): one write, atomic on a pipe. The reply follows (`copy_reply`), so the
        // status pipe becomes ours, out of the server's reach.
        let port = addr.map_or(0, |a| a.port()).to_be_bytes();
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() }.to_be_bytes();
        let status = [b'L', port[0], port[1], pid[0], pid[1], pid[2], pid[3]];
        // SAFETY: writing from a local array; a closed fd only makes this fail.
        unsafe { real::write(fd, status.as_ptr().cast(), status.len()) };
        STATUS_FD.store(fds::adopt(fd), SeqCst);
    }
    let Some(addr) = addr else {
        end::cannot_drive(format_args!("cannot read the address of the listening socket (fd {listen_fd})"));
    };
    debug!("server listens (fd {listen_fd}); connecting to {addr}");
    // SAFETY: registering a plain `extern "C" fn()`.
    unsafe { libc::atexit(exited_early) };
    // SAFETY: eventfd has no preconditions; -1 (no wake-ups) is handled by the client thread.
    WAKE_FD.store(fds::adopt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) }), SeqCst);
    // The client's socket is made here, before `listen` returns: a server that closes every
    // descriptor right after it could otherwise close it between its creation and `adopt`.
    let sock = client_socket(addr);
    STARTING_CLIENT.set(true);
    // The client thread starts with every signal blocked (it inherits this thread's mask), so
    // the server's handlers (SIGCHLD, SIGALRM, SIGPIPE...) never run on it.
    // SAFETY: sigset_t is plain data; sigfillset fills it; pthread_sigmask swaps this thread's
    // mask and the old one is put back right after the spawn.
    let spawned = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let spawned = std::thread::Builder::new().name("sockfuzz".into()).spawn(move || run(sock, addr));
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned
    };
    STARTING_CLIENT.set(false);
    if let Err(e) = spawned {
        end::cannot_drive(format_args!("cannot start the client thread: {e}"));
    }
}

/// A new socket for the client, one of ours (`fds`).
fn client_socket(addr: SocketAddr) -> c_int {
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
    // The connect may complete (and be accepted) before the client thread has published its
    // port: sleep until it has (`publish_port`), not yield, which can hand the core to another
    // process for a whole time slice. Not a private futex: a pre-forked worker may be the one
    // waiting, on the run's shared page.
    let client_port = &shared::get().client_port;
    loop {
        match client_port.load(SeqCst) {
            // SAFETY: FUTEX_WAIT reads the i32 at a valid, aligned address mapped in this
            // process and sleeps while it holds 0, at most the timeout; its result is not needed.
            0 => unsafe {
                let timeout = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000 };
                libc::syscall(libc::SYS_futex, client_port.as_ptr(), libc::FUTEX_WAIT, 0, &raw const timeout);
            },
            port => return port == i32::from(peer.port()),
        }
    }
}

/// Publish the client's port (or -1: none) and wake a server thread waiting in `is_ours`.
fn publish_port(port: i32) {
    let client_port = &shared::get().client_port;
    client_port.store(port, SeqCst);
    // SAFETY: FUTEX_WAKE on the address of a mapped i32; it touches no memory.
    unsafe { libc::syscall(libc::SYS_futex, client_port.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// At the exit of the run's process before anything accepted our connection. A server that
/// forked during the run may have gone into the background: this process stays as the daemon's
/// stand-in, the client thread goes on, and the run ends when the daemon has served the
/// connection (`settle`; the daemon is its child, this being a subreaper). When nothing accepts
/// and nothing it forked runs any more (or it forked nothing), no request was sent, and the run
/// says it could not drive the server rather than pass for a normal one.
pub extern "C" fn exited_early() {
    if !shared::is_run_process() || shared::get().taken.load(SeqCst) {
        return;
    }
    if shared::has_forked() {
        debug!("the server may have gone into the background: following the processes it forked");
        let _waiting = idle::Waiting::enter(-1);
        // Until one accepts; or none of them has run for five looks in a row (a single look
        // was seen to miss a running daemon in about one run in a thousand).
        let mut gone = 0;
        while !shared::get().taken.load(SeqCst) && gone < 5 {
            gone = if shared::forked_alive() { 0 } else { gone + 1 };
            // SAFETY: poll with no descriptors only sleeps (10 ms); our own, not the hook.
            unsafe { real::poll(std::ptr::null_mut(), 0, 10) };
        }
        while shared::get().taken.load(SeqCst) {
            // SAFETY: pause has no preconditions; the client thread ends the process.
            unsafe { real::pause() };
        }
    }
    end::cannot_drive(format_args!(
        "the server exited after listening, before anything accepted the connection, so no request was sent"
    ));
}

/// Serve test cases: one, or in persistent mode one after another on new connections.
fn run(mut sock: c_int, addr: SocketAddr) -> ! {
    // Kept from one test case to the next: fresh buffers would fault their pages in each time.
    let (mut input, mut reply) = (Vec::new(), vec![0u8; 64 * 1024]);
    loop {
        crate::persist::begin();
        serve(sock, addr, &mut input, &mut reply);
        settle::end_run(); // returns on a normal end
        if !crate::persist::next() {
            end::exit(0)
        }
        sock = client_socket(addr);
    }
}

/// One test case: connect, exchange, and make sure the server took the connection.
fn serve(sock: c_int, addr: SocketAddr, input: &mut Vec<u8>, reply: &mut [u8]) {
    read_input(input);
    if let Err(e) = connect(sock, addr) {
        publish_port(-1);
        end::cannot_drive(format_args!("cannot connect to the server's listening socket {addr}: {e}"));
    }
    // SAFETY: `sock` is our connected socket, owned by this stream until `into_raw_fd` below.
    let mut stream = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(sock) };
    let port = stream.local_addr().map_or(-1, |a| i32::from(a.port()));
    publish_port(port);
    debug!("connected from port {port}; sending {} bytes", input.len());
    exchange(&mut stream, input, reply);
    // Closed by us: dropping the stream would go through our `close` hook, which keeps ours open.
    fds::release(std::os::fd::IntoRawFd::into_raw_fd(stream));
    if !shared::get().taken.load(SeqCst) {
        // The listener went away (the server is exiting, or closed it) without accepting: let
        // the server's own exit, if it comes, be the run's.
        std::thread::sleep(std::time::Duration::from_secs(1));
        end::cannot_drive(format_args!(
            "the connection ended, but the server never accepted it (it closed its listening socket, \
             or a process it started before listening accepted it, which sockfuzz cannot follow)"
        ));
    }
    debug!("server closed the connection");
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

/// The test case, into `input`: from the fuzzer's shared memory when the target's runtime has
/// it there (`sockfuzz_shm_input`), else from `SOCKFUZZ_INPUT_FILE`, else all of stdin.
fn read_input(input: &mut Vec<u8>) {
    input.clear();
    if shm_input(input) {
        return;
    }
    if let Some(path) = &config().input_file {
        *input = std::fs::read(path).unwrap_or_else(|e| {
            end::cannot_drive(format_args!("cannot read the input file {}: {e}", path.display()));
        });
        return;
    }
    // SAFETY: fd 0 stays open for the life of the process; ManuallyDrop keeps it open.
    let mut stdin = std::mem::ManuallyDrop::new(unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(0) });
    if let Err(e) = stdin.read_to_end(input) {
        debug!("reading stdin failed after {} bytes: {e}", input.len());
    }
}

/// Tells our runtime's fork server that the test case is read here, so it may ask the fuzzer
/// for test cases in shared memory (a program that reads stdin itself needs them there).
#[no_mangle]
pub static sockfuzz_reads_shm_input: u8 = 1;

/// Copy the test case from the fuzzer's shared memory into `input`; false without one.
fn shm_input(input: &mut Vec<u8>) -> bool {
    static SEGMENT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let segment = *SEGMENT.get_or_init(|| {
        // SAFETY: looking up a symbol by a NUL-terminated name.
        let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"sockfuzz_shm_input".as_ptr()) };
        if f.is_null() {
            return 0; // not our runtime (e.g. afl-clang-fast's)
        }
        // SAFETY: our runtime's `const uint8_t *sockfuzz_shm_input(void)`.
        let f: extern "C" fn() -> *const u8 = unsafe { std::mem::transmute(f) };
        f() as usize
    }) as *const u8;
    if segment.is_null() {
        return false;
    }
    // SAFETY: the segment holds the length (u32) and then that many bytes, written by the fuzzer
    // before it asked for this run; it stays attached for the life of the process.
    unsafe {
        let len = segment.cast::<u32>().read_unaligned() as usize;
        debug!("test case of {len} bytes from shared memory");
        input.extend_from_slice(std::slice::from_raw_parts(segment.add(4), len));
    }
    true
}

/// Send `input` and read the reply to EOF at the same time (a server may answer, or close,
/// before it has read everything), half-closing once all is sent. Returns when the server
/// closed the connection or the connection's child died of a signal or spun on EOF; ends the
/// process itself on the idle verdict (`idle`).
fn exchange(sock: &mut TcpStream, input: &[u8], buf: &mut [u8]) {
    let output = config().output;
    let fd = sock.as_raw_fd();
    let wake = WAKE_FD.load(SeqCst);
    let _ = sock.set_nonblocking(true);
    let mut sent = 0;
    let mut writing = true;
    let mut child = Child::default();
    let grace = config().idle.unwrap_or_default();
    // Since when the server has looked idle, for the grace period.
    let mut idle_since: Option<std::time::Instant> = None;
    // The counters say idle but a thread is not asleep yet: look again in a moment.
    let mut settling = false;
    // Since when a reused server has sat idle without accepting the connection.
    let mut ignored_since: Option<std::time::Instant> = None;
    let reused = reused();
    if input.is_empty() {
        let _ = sock.shutdown(std::net::Shutdown::Write);
        writing = false;
        SENT.store(true, SeqCst);
    }
    loop {
        let events = libc::POLLIN | if writing { libc::POLLOUT } else { 0 };
        let mut pfds = [
            libc::pollfd { fd, events, revents: 0 },
            libc::pollfd { fd: wake, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: child.pidfd, events: libc::POLLIN, revents: 0 },
        ];
        // Without a pidfd for a running child, look at it now and then; look again when the
        // grace period of an idle server ends.
        let mut tick = if child.pid > 0 && child.pidfd < 0 && !child.exited { 20 } else { -1 };
        if let Some(since) = idle_since {
            let left = grace.saturating_sub(since.elapsed()).as_millis().min(1000) as i32 + 1;
            tick = if tick < 0 { left } else { tick.min(left) };
        }
        if settling {
            tick = 1;
        }
        if reused && !shared::get().taken.load(SeqCst) {
            // A server that no longer accepts may wait where no new wait wakes us: look.
            tick = if tick < 0 { UNSERVED_LOOK_MS } else { tick.min(UNSERVED_LOOK_MS) };
        }
        // SAFETY: valid pollfds (a negative fd is ignored by poll); our own poll, not the hook.
        let ready = unsafe { real::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, tick) };
        if ready < 0 {
            continue; // EINTR
        }
        if pfds[1].revents != 0 {
            let mut count = 0u64;
            // SAFETY: reads the eventfd's 8-byte counter into a local (resets it).
            unsafe { real::read(wake, (&raw mut count).cast(), 8) };
        }
        if child.watch() {
            return; // it died of a signal or spun on EOF: `settle` re-raises it
        }
        let [sock_fd, ..] = pfds;
        if writing && sock_fd.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0 {
            match sock.write(&input[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(_) => writing = false, // the server stopped reading: just read what it says
            }
            if writing && sent == input.len() {
                let _ = sock.shutdown(std::net::Shutdown::Write);
                writing = false;
                SENT.store(true, SeqCst);
            }
        }
        if sock_fd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0 {
            match sock.read(buf) {
                Ok(0) => return,
                Ok(n) => copy_reply(&buf[..n], output),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return, // ECONNRESET and the like: the connection is over
            }
        }
        if reused
            && SENT.load(SeqCst)
            && !shared::get().taken.load(SeqCst)
            && idle::everyone_waits()
            && settle::others_sleep()
        {
            if ignored_since.get_or_insert_with(std::time::Instant::now).elapsed() >= UNSERVED_GRACE {
                end::cannot_drive(format_args!("the server no longer accepts connections"));
            }
        } else {
            ignored_since = None;
        }
        settling = idle::looks_idle(child.running());
        if settling && settle::others_sleep() && idle::looks_idle(child.running()) {
            settling = false;
            if idle_since.get_or_insert_with(std::time::Instant::now).elapsed() >= grace {
                debug!("every server thread waits and the connection is still open: the server left it open");
                end::exit(if idle::stuck() { EXIT_STUCK } else { EXIT_IDLE });
            }
        } else {
            idle_since = None;
        }
    }
}

/// How often a reused server that has not accepted the connection is looked at, and how long it
/// may sit idle without accepting it before the test case is left to a fresh server.
const UNSERVED_LOOK_MS: i32 = 5;
const UNSERVED_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

/// The process that handles our connection apart from the run's (`settle::connection_process`):
/// the child the server forked for it, or the pre-forked worker that accepted it; watched
/// through a pidfd where the kernel has them.
struct Child {
    pid: libc::pid_t,
    pidfd: libc::c_int,
    exited: bool,
    /// A worker goes on serving after our connection: its idleness counts, not its running.
    worker: bool,
}

impl Default for Child {
    fn default() -> Self {
        Child { pid: 0, pidfd: -1, exited: false, worker: false }
    }
}

impl Child {
    /// Notice a new child or its end. True when the run must end now: it died of a signal or
    /// spun on EOF. One that exited normally may leave the connection open in its parent.
    fn watch(&mut self) -> bool {
        if self.pid == 0 {
            self.pid = settle::connection_process().unwrap_or(0);
            self.worker = self.pid > 0 && CHILD_PID.load(SeqCst) != self.pid;
            if self.pid > 0 {
                // SAFETY: pidfd_open takes a pid and flags; failure (old kernel, already reaped)
                // leaves -1 and the 20 ms look instead.
                self.pidfd = fds::adopt(unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) } as libc::c_int);
            }
        }
        if self.pid <= 0 || self.exited {
            return false;
        }
        let Some(status) = settle::child_ended() else { return false };
        self.exited = true;
        if self.pidfd >= 0 {
            fds::release(self.pidfd);
            self.pidfd = -1;
        }
        settle::failed(status)
    }

    fn running(&self) -> bool {
        self.pid > 0 && !self.exited && !self.worker
    }
}

/// The reply goes to the status pipe (where `fuzzer run` reads it, whatever the server did with
/// its stdout) and, with `SOCKFUZZ_OUTPUT` on, to stdout.
fn copy_reply(bytes: &[u8], stdout: bool) {
    write_all(STATUS_FD.load(SeqCst), bytes);
    if stdout {
        write_all(1, bytes);
    }
}

fn write_all(fd: c_int, mut bytes: &[u8]) {
    while fd >= 0 && !bytes.is_empty() {
        // SAFETY: `bytes` is a valid buffer; a closed or full descriptor only makes this fail.
        let n = unsafe { real::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}
