//! One test case, played by the client thread: its connections in one poll loop.
//!
//! A test case is one connection's bytes, sent whole, or a comux file of several connections
//! (`contract::comux`), whose chunks are sent in schedule order, each connection opened at its
//! first chunk. Every open connection is read all the time (a server may answer, or close,
//! before it has everything); a connection is done when the server closed it or we reset it.
//! The flags of a chunk, played here:
//! - `AWAIT`: the next chunk waits until the server has done what it does with this one (its
//!   threads, and those of the processes that hold our connections, asleep again);
//! - `KEEP_OPEN` on a connection's last chunk: no half-close after it; once everything is sent
//!   and the server waits again, the kept-open connections are half-closed, as a browser's
//!   would be when it gives up (a server that answers and closes ends the run normally first);
//! - `BYTEWISE`: one byte per `send`, with a short pause after each;
//! - `RESET`: after the chunk, a RST (`SO_LINGER {1, 0}`) without reading what is pending.
//!
//! The run ends when every connection is done; the idle verdict (`idle`) when the server holds
//! one open and waits with nothing left to send; the spin verdict (`spin`) when a server thread
//! runs in a loop that never ends; a crash or an EOF spin of a connection's child ends it at
//! once (`settle` re-raises it).

use crate::log::debug;
use crate::state::*;
use crate::{connection, end, fds, idle, real, replies, settle, shared, sockets, spin};
use contract::comux::{self, AWAIT, BYTEWISE, KEEP_OPEN, RESET};
use contract::verdicts::{EXIT_BLOCKED, EXIT_IDLE, EXIT_SPIN, EXIT_STUCK};
use libc::c_int;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// The pause after each byte of a `BYTEWISE` chunk: long enough for a woken server to read it.
const BYTE_PAUSE: Duration = Duration::from_millis(1);

/// One chunk, in the order it is sent.
struct Step<'a> {
    conn: usize,
    flags: u32,
    data: &'a [u8],
    /// Its connection's last chunk.
    last: bool,
}

/// The schedule of `input`: one step for raw bytes, the chunks in play order for comux.
fn steps(input: &[u8]) -> Vec<Step<'_>> {
    let Some(file) = comux::parse(input).filter(|f| !f.is_empty()) else {
        return vec![Step { conn: 0, flags: 0, data: input, last: true }];
    };
    file.schedule()
        .map(|i| {
            let chunk = file.chunk(i).expect("a scheduled chunk exists");
            Step { conn: chunk.conn as usize, flags: chunk.flags, data: chunk.data, last: file.is_last_of_conn(i) }
        })
        .collect()
}

/// Our side of one connection.
struct Conn {
    fd: c_int,
    /// Closed by the server (EOF, a reset) or reset by us: nothing more is sent or read.
    done: bool,
    /// Its last chunk asked to keep it open, and it has not been half-closed yet.
    kept: bool,
    /// A send failed: the server stopped reading, its later chunks are skipped.
    broken: bool,
    /// Its last chunk is sent.
    finished: bool,
    /// The connect was started.
    opened: bool,
    /// The connect has completed (the socket was writable once).
    connected: bool,
    /// The server has answered on it (a byte at least).
    replied: bool,
    /// Its reply cut into responses, for the fuzzer's response-state feedback.
    reply: replies::Reply,
}

/// What the next chunk waits for.
#[derive(PartialEq)]
enum Wait {
    Nothing,
    /// The pause after a byte of a `BYTEWISE` chunk, until then.
    Byte(Instant),
    /// The server to settle after an `AWAIT` chunk.
    Server,
}

/// Play one test case from our socket `first` (made for its first connection) to `addr`.
/// Returns when every connection is done, or a connection's child died of a signal or spun on
/// EOF; ends the process itself on the idle verdict. False when every connection was reset by
/// us (the server need not have accepted any).
pub fn play(first: c_int, addr: SocketAddr, input: &[u8], buf: &mut [u8]) -> bool {
    let steps = steps(input);
    let several = comux::is_comux(input);
    let count = steps.iter().map(|s| s.conn + 1).max().unwrap_or(1);
    let mut conns: Vec<Conn> = (0..count)
        .map(|_| Conn {
            fd: -1,
            done: false,
            kept: false,
            broken: false,
            finished: false,
            replied: false,
            opened: false,
            connected: false,
            reply: replies::Reply::default(),
        })
        .collect();
    let states = replies::enabled();
    let mut codes = replies::Codes::default();
    let opened = (0..count).filter(|&c| steps.iter().any(|s| s.conn == c)).count();
    shared::get().conns.store(opened as u32, SeqCst);
    let mut first = Some(first);
    debug!("playing {} bytes: {} chunks on {opened} connections", input.len(), steps.len());

    let (mut next, mut sent) = (0, 0);
    let mut wait = Wait::Nothing;
    let mut children = Children::default();
    let grace = config().idle.unwrap_or_default();
    // Since when the server has looked idle, for the grace period.
    let mut idle_since: Option<Instant> = None;
    // The counters say idle but a thread is not asleep yet: look again in a moment.
    let mut settling = false;
    // Since when a reused server has sat idle without accepting a connection.
    let mut ignored_since: Option<Instant> = None;
    let reused = reused();
    let wake = WAKE_FD.load(SeqCst);
    let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(count + 8);
    let mut polled: Vec<usize> = Vec::with_capacity(count);
    let mut speaker = usize::MAX;
    let mut spin = spin::Watch::new();
    // Bytes sent and received so far: the server's progress, for the spin watch.
    let mut moved = 0u64;
    loop {
        // Send what can be sent now.
        while next < steps.len() && wait == Wait::Nothing {
            let step = &steps[next];
            let conn = &mut conns[step.conn];
            if conn.done || conn.broken {
                (next, sent) = (next + 1, 0);
                continue;
            }
            if conn.fd < 0 {
                conn.fd = match first.take() {
                    Some(fd) => fd,
                    None => sockets::socket(addr),
                };
            }
            // Nothing is sent before the handshake is done: a half-close or a reset would abort
            // the connect, and the server would never see the connection.
            let connected = if conn.connected {
                Ok(true)
            } else if !conn.opened && connection::listener_gone() {
                Err(std::io::Error::from_raw_os_error(libc::ECONNREFUSED))
            } else {
                let started = if conn.opened { Ok(()) } else { sockets::open(step.conn, conn.fd, addr) };
                conn.opened = true;
                started.and_then(|()| connect_result(conn.fd))
            };
            match connected {
                Ok(true) => conn.connected = true,
                Ok(false) => break, // POLLOUT says when
                Err(e) => {
                    // Refused: the listener is gone. Before the first connection, the test
                    // case cannot be played at all; later, it is part of what the server did.
                    if step.conn == steps[0].conn {
                        end::cannot_drive(format_args!("cannot connect to the server's listening socket {addr}: {e}"));
                    }
                    debug!("connection {} refused: {e}", step.conn);
                    close(conn);
                    continue;
                }
            }
            if sent < step.data.len() {
                let bytewise = step.flags & BYTEWISE != 0 && sent < comux::BYTEWISE_MAX;
                let end = if bytewise { sent + 1 } else { step.data.len() };
                // A connection's last chunk and its half-close go in one segment (the data is
                // held back until the shutdown), so a server always sees the end of the request
                // and the end-of-file in one read burst, as from a client that sends and closes
                // at once: never one time so and the next not, by the scheduler's whim.
                let half_close = step.last && step.flags & (KEEP_OPEN | RESET | BYTEWISE) == 0;
                match send(conn.fd, &step.data[sent..end], if half_close { libc::MSG_MORE } else { 0 }) {
                    Ok(n) => {
                        sent += n;
                        moved += n as u64;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) || e.raw_os_error() == Some(libc::EINTR) => break,
                    Err(_) => {
                        conn.broken = true; // the server stopped reading: just read what it says
                        continue;
                    }
                }
                if bytewise {
                    // Until the server has read the byte (seen where it accepted the
                    // connection), at most the pause.
                    let until = Instant::now() + BYTE_PAUSE;
                    let server_fd = FD_OF_CONN[step.conn].load(SeqCst);
                    // Yielding, not sleeping: a sleep lasts the timer slack (50 µs) at least, a
                    // byte read by a thread on this core takes a few.
                    while unread(server_fd) && Instant::now() < until {
                        std::thread::yield_now();
                    }
                    if server_fd < 0 {
                        wait = Wait::Byte(until);
                    }
                }
                if sent < step.data.len() {
                    continue;
                }
            }
            conn.finished |= step.last;
            if step.flags & RESET != 0 {
                sockets::note_reset(step.conn);
                reset(conn);
            } else if step.last && step.flags & KEEP_OPEN != 0 {
                conn.kept = true;
            } else if step.last {
                // SAFETY: shutdown on our own connected socket.
                unsafe { libc::shutdown(conn.fd, libc::SHUT_WR) };
            }
            if step.flags & AWAIT != 0 && !conn.done && wait == Wait::Nothing {
                wait = Wait::Server;
            }
            (next, sent) = (next + 1, 0);
        }
        if next == steps.len() && !SENT.load(SeqCst) {
            SENT.store(true, SeqCst);
        }
        if next == steps.len() && conns.iter().all(|c| c.done || c.fd < 0) {
            return !all_reset(&steps);
        }

        pfds.clear();
        polled.clear();
        let writing = steps.get(next).filter(|_| wait == Wait::Nothing).map(|s| s.conn);
        for (i, c) in conns.iter().enumerate().filter(|(_, c)| c.fd >= 0 && !c.done) {
            let out = if writing == Some(i) { libc::POLLOUT } else { 0 };
            pfds.push(libc::pollfd { fd: c.fd, events: libc::POLLIN | out, revents: 0 });
            polled.push(i);
        }
        let socks = pfds.len();
        pfds.push(libc::pollfd { fd: wake, events: libc::POLLIN, revents: 0 });
        children.pollfds(&mut pfds);
        // Look now and then at what no descriptor tells: a child without a pidfd, the server
        // settling (for an `AWAIT`, or the kept-open connections), a byte's pause, the grace
        // period of an idle server, a reused server that does not accept.
        let kept = next == steps.len() && conns.iter().any(|c| c.kept && !c.done);
        let mut tick = Tick::default();
        if children.need_looks() {
            tick.at_most(20);
        }
        if wait == Wait::Server || kept || settling {
            tick.at_most(1);
        }
        if let Wait::Byte(until) = wait {
            tick.at_most(until.saturating_duration_since(Instant::now()).as_millis() as i32 + 1);
        }
        if let Some(since) = idle_since {
            tick.at_most(grace.saturating_sub(since.elapsed()).as_millis().min(1000) as i32 + 1);
        }
        if reused && !shared::accepted_any() {
            // A server that no longer accepts may wait where no new wait wakes us: look.
            tick.at_most(UNSERVED_LOOK_MS);
        }
        if let Some(watch) = &spin {
            tick.at_most(watch.due_in());
        }
        // SAFETY: valid pollfds (a negative fd is ignored by poll); our own poll, not the hook.
        if unsafe { real::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, tick.0) } < 0 {
            continue; // EINTR
        }
        if pfds[socks].revents != 0 {
            let mut count = 0u64;
            // SAFETY: reads the eventfd's 8-byte counter into a local (resets it).
            unsafe { real::read(wake, (&raw mut count).cast(), 8) };
        }
        if children.watch() {
            return true; // it died of a signal or spun on EOF: `settle` re-raises it
        }
        if spin.as_mut().is_some_and(|watch| watch.spins(settle::connection_processes(), moved)) {
            end::exit(EXIT_SPIN);
        }
        for (pfd, &index) in pfds[..socks].iter().zip(&polled) {
            if pfd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) == 0 {
                continue;
            }
            // SAFETY: reading into our buffer from our socket.
            let n = unsafe { real::read(pfd.fd, buf.as_mut_ptr().cast(), buf.len()) };
            match n {
                0 => close(&mut conns[index]),
                n if n > 0 => {
                    moved += n as u64;
                    conns[index].replied = true;
                    if states {
                        conns[index].reply.read(&buf[..n as usize], &mut codes);
                    }
                    if several && speaker != index {
                        speaker = index;
                        copy_reply(format!("--- connection {index} ---\n").as_bytes());
                    }
                    copy_reply(&buf[..n as usize]);
                }
                _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) => {}
                _ => close(&mut conns[index]), // ECONNRESET and the like: the connection is over
            }
        }

        if connection::listener_gone() {
            // What the kernel does to the connections queued on a listener that is closed.
            let claimed = shared::get().claimed.load(SeqCst);
            for (i, c) in conns.iter_mut().enumerate().filter(|(i, c)| c.opened && !c.done && claimed & (1 << i) == 0) {
                debug!("the server closed its listening socket: resetting connection {i}, never accepted");
                reset(c);
            }
        }
        match wait {
            Wait::Byte(until) if Instant::now() >= until => wait = Wait::Nothing,
            Wait::Server if settle::others_sleep() => wait = Wait::Nothing,
            _ => {}
        }
        if kept && settle::others_sleep() {
            if blocked(&conns) {
                if ON.load(SeqCst) {
                    debug!("a connection stalls mid-request and another's request is left unread: blocked");
                    end::exit(EXIT_BLOCKED);
                }
                // A patient run waits on, as the slow client would: the timeout decides.
                continue;
            }
            // Everything is sent and the server waits for more: it gets the end of the requests.
            for c in conns.iter_mut().filter(|c| c.kept && !c.done) {
                debug!("the server waits: half-closing a connection kept open");
                // SAFETY: shutdown on our own connected socket.
                unsafe { libc::shutdown(c.fd, libc::SHUT_WR) };
                c.kept = false;
            }
            continue;
        }
        if reused && SENT.load(SeqCst) && !shared::accepted_any() && idle::everyone_waits() && settle::others_sleep() {
            if ignored_since.get_or_insert_with(Instant::now).elapsed() >= UNSERVED_GRACE {
                end::cannot_drive(format_args!("the server no longer accepts connections"));
            }
        } else {
            ignored_since = None;
        }
        settling = !kept && idle::looks_idle(children.running());
        if settling && settle::others_sleep() && idle::looks_idle(children.running()) {
            settling = false;
            if idle_since.get_or_insert_with(Instant::now).elapsed() >= grace {
                let eof = shared::get().eof_read.load(SeqCst);
                let open = |c: &Conn| c.fd >= 0 && !c.done;
                if config().leaks && conns.iter().enumerate().all(|(i, c)| !open(c) || eof & (1 << i) != 0) {
                    // The server read the end of each connection it still holds, and waits: it
                    // will never close them. The client leaves, as a real one would, and the
                    // descriptor-leak oracle sees what stays open.
                    debug!("the server read the end of the connections it keeps open, and waits: leaving them");
                    conns.iter_mut().filter(|c| open(c)).for_each(close);
                    continue;
                }
                debug!("every server thread waits and a connection is still open: the server left it open");
                end::exit(if idle::stuck() { EXIT_STUCK } else { EXIT_IDLE });
            }
        } else {
            idle_since = None;
        }
    }
}

/// One slow client blocks the others: a connection kept open that got no reply (stalled
/// mid-request), and another whose request is all sent and half-closed, unanswered, accepted
/// by the server (in this process) and still unread in its socket: the server took it and then
/// sleeps without reading it (a lock held across another connection's read, an event loop that
/// reads one connection until its request is whole). A connection not accepted at all is a
/// server that serves one at a time, by design; one read and left unanswered is the idle
/// verdict's.
fn blocked(conns: &[Conn]) -> bool {
    let stalled = conns.iter().any(|c| c.kept && !c.done && !c.replied);
    let waiting = |(i, c): (usize, &Conn)| {
        c.finished && !c.kept && !c.done && !c.broken && !c.replied && unread(FD_OF_CONN[i].load(SeqCst))
    };
    stalled && conns.iter().enumerate().any(waiting)
}

/// Whether the connect of our socket `fd` has completed (true), is still under way (false),
/// or failed.
fn connect_result(fd: c_int) -> std::io::Result<bool> {
    let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: one valid pollfd, no waiting; our own poll, not the hook.
    if unsafe { real::poll(&mut pfd, 1, 0) } <= 0 {
        return Ok(false);
    }
    let mut error: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: SO_ERROR writes one int into a local; `len` says its size.
    unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&raw mut error).cast(), &mut len) };
    match error {
        0 => Ok(true),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// Whether the server's socket `fd` (in this process) holds bytes it has not read.
fn unread(fd: c_int) -> bool {
    let mut pending: c_int = 0;
    // SAFETY: FIONREAD writes one int; a closed or foreign fd only makes it fail.
    fd >= 0 && unsafe { libc::ioctl(fd, libc::FIONREAD, &mut pending) } == 0 && pending > 0
}

/// Every connection of the test case is reset by one of its chunks.
fn all_reset(steps: &[Step]) -> bool {
    steps.iter().all(|s| steps.iter().any(|r| r.conn == s.conn && r.flags & RESET != 0))
}

/// A poll timeout in milliseconds: forever until something asks for a look.
struct Tick(i32);

impl Default for Tick {
    fn default() -> Self {
        Tick(-1)
    }
}

impl Tick {
    fn at_most(&mut self, ms: i32) {
        self.0 = if self.0 < 0 { ms } else { self.0.min(ms) };
    }
}

/// How often a reused server that has not accepted the connection is looked at, and how long it
/// may sit idle without accepting it before the test case is left to a fresh server.
const UNSERVED_LOOK_MS: i32 = 5;
const UNSERVED_GRACE: Duration = Duration::from_millis(20);

/// `send` without SIGPIPE and without blocking, with `flags` besides.
fn send(fd: c_int, bytes: &[u8], flags: c_int) -> std::io::Result<usize> {
    // SAFETY: sending from a valid buffer on our own socket.
    let n =
        unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT | flags) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Close our side of a connection, which is done.
fn close(conn: &mut Conn) {
    if conn.fd >= 0 && !conn.done {
        // Through `fds`: our `close` hook keeps our descriptors open.
        fds::release(conn.fd);
    }
    conn.done = true;
}

/// Close abortively: the server gets a RST, whatever it has not read yet is dropped.
fn reset(conn: &mut Conn) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setting a plain option on our own socket from a local.
    unsafe {
        libc::setsockopt(
            conn.fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    close(conn);
}

/// The processes that handle our connections apart from the run's (`settle::connection_processes`):
/// the children the server forked for them, or the pre-forked worker that accepted them; each
/// watched through a pidfd where the kernel has them.
#[derive(Default)]
struct Children(Vec<Child>);

struct Child {
    pid: libc::pid_t,
    pidfd: c_int,
    exited: bool,
    /// A worker goes on serving after our connection: its idleness counts, not its running.
    worker: bool,
}

impl Children {
    /// Notice new children and their ends. True when the run must end now: one died of a
    /// signal or spun on EOF. One that exited normally may leave the connection open in its
    /// parent.
    fn watch(&mut self) -> bool {
        for pid in settle::connection_processes() {
            if !self.0.iter().any(|c| c.pid == pid) {
                // SAFETY: pidfd_open takes a pid and flags; failure (old kernel, already reaped)
                // leaves -1 and a look every 20 ms instead.
                let pidfd = fds::adopt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as c_int);
                self.0.push(Child { pid, pidfd, exited: false, worker: !CHILD_PIDS.contains(pid) });
            }
        }
        for child in self.0.iter_mut().filter(|c| !c.exited) {
            let Some(status) = settle::child_ended(child.pid) else { continue };
            child.exited = true;
            if child.pidfd >= 0 {
                fds::release(child.pidfd);
                child.pidfd = -1;
            }
            if settle::failed(status) {
                return true;
            }
        }
        false
    }

    /// A connection's child still runs (a worker does not count).
    fn running(&self) -> bool {
        self.0.iter().any(|c| !c.exited && !c.worker)
    }

    /// A running child has no pidfd: it is looked at now and then.
    fn need_looks(&self) -> bool {
        self.0.iter().any(|c| !c.exited && c.pidfd < 0)
    }

    fn pollfds(&self, pfds: &mut Vec<libc::pollfd>) {
        let running = self.0.iter().filter(|c| !c.exited && c.pidfd >= 0);
        pfds.extend(running.map(|c| libc::pollfd { fd: c.pidfd, events: libc::POLLIN, revents: 0 }));
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.0.iter().filter(|c| c.pidfd >= 0) {
            fds::release(child.pidfd);
        }
    }
}

/// The status pipe (`SOCKFUZZ_STATUS_FD`) once the server listens: the reply goes there.
static STATUS_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// From now on, replies go to `fd` too (the status pipe, one of ours).
pub fn output_to(fd: c_int) {
    STATUS_FD.store(fd, SeqCst);
}

/// The reply goes to the status pipe (where `fuzzer run` reads it, whatever the server did with
/// its stdout) and, with `SOCKFUZZ_OUTPUT` on, to stdout. A comux test case's replies come
/// under a line naming their connection, whenever the connection that speaks changes. Not those
/// of a replay.
fn copy_reply(bytes: &[u8]) {
    if REPLAYING.load(SeqCst) {
        return; // a leak's check plays the test case again: its replies were shown once
    }
    write_all(STATUS_FD.load(SeqCst), bytes);
    if config().output {
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
