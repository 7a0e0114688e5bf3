//! Playing a test case over real TCP against a server started normally (`fuzzer send`): the
//! chunks in the order [`contract::comux::Comux::schedule`] gives, from one thread, every
//! connection non-blocking in one poll loop and read all the time, since a server may answer
//! before it has everything. Raw bytes are one connection's only chunk, half-closed after it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use contract::comux::{self, AWAIT, BYTEWISE, KEEP_OPEN, RESET};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{setsockopt, sockopt};

/// How a case is paced.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// The run ends (timed out) once the server has sent nothing for this long while we could
    /// send nothing either; an AWAIT waits no longer than this for its reply.
    pub timeout: Duration,
    /// An awaited reply is complete once it has started and been quiet this long.
    pub await_quiet: Duration,
    /// Kept-open connections are half-closed once everything is sent and nothing has been sent
    /// or received for this long: a browser keeps its side open until the reply is there.
    pub keep_open_quiet: Duration,
    /// The pause between the bytes of a BYTEWISE chunk, so that the server reads each alone.
    pub byte_pause: Duration,
}

impl Pacing {
    /// The pauses above, with `timeout`.
    pub fn new(timeout: Duration) -> Pacing {
        Pacing {
            timeout,
            await_quiet: Duration::from_millis(100),
            keep_open_quiet: Duration::from_millis(200),
            byte_pause: Duration::from_millis(2),
        }
    }
}

/// The server to play against: every address its name resolves to (`localhost` may be ::1 and
/// 127.0.0.1, and the server may listen on one of them only).
pub struct Server {
    addrs: Vec<SocketAddr>,
    /// HOST:PORT as the user would write it, for messages.
    shown: String,
    port: u16,
}

impl Server {
    pub fn resolve(host: &str, port: u16) -> Result<Server> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let shown = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let addrs: Vec<SocketAddr> =
            (host, port).to_socket_addrs().with_context(|| format!("could not resolve {host}"))?.collect();
        if addrs.is_empty() {
            return Err(anyhow!("could not resolve {host}: no addresses"));
        }
        Ok(Server { addrs, shown, port })
    }

    /// A connection on the first address that takes it; else the last address's error.
    fn connect(&self, timeout: Duration) -> io::Result<TcpStream> {
        let mut last_err = io::Error::from(ErrorKind::AddrNotAvailable);
        for sa in &self.addrs {
            match TcpStream::connect_timeout(sa, timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// The error of a first connection that failed (after `timeout`): the user's server is not
    /// there.
    fn unreachable(&self, e: io::Error, timeout: Duration) -> anyhow::Error {
        let (target, port) = (&self.shown, self.port);
        match e.kind() {
            ErrorKind::ConnectionRefused => anyhow!(
                "Could not connect to {target}: connection refused. Is the server running and listening on port {port}?"
            ),
            ErrorKind::TimedOut => anyhow!(
                "Could not connect to {target}: no answer within {} s. Is that the address your server listens on?",
                timeout.as_secs_f64()
            ),
            _ => anyhow!("Could not connect to {target}: {e}. Is that the address your server listens on?"),
        }
    }
}

/// What playing a case did.
#[derive(Debug)]
pub struct Played {
    /// One per connection the case declares, by number.
    pub conns: Vec<Conn>,
    /// The replies in the order their bytes arrived: a new entry whenever the connection that
    /// speaks changes.
    pub transcript: Vec<(u32, Vec<u8>)>,
    /// The run ended at the timeout: a connection was still open, or a chunk could not be sent.
    pub timed_out: bool,
    /// At the timeout: the connection whose chunk the server did not take.
    pub blocked: Option<u32>,
}

/// One connection's side of a run.
#[derive(Debug, Default)]
pub struct Conn {
    /// Bytes of its chunks, and how many of them were sent.
    pub to_send: usize,
    pub sent: usize,
    pub reply: Vec<u8>,
    pub end: End,
    /// Why sending on it stopped early (e.g. the server had closed it).
    pub send_error: Option<io::Error>,
}

/// How a connection ended.
#[derive(Debug, Default)]
pub enum End {
    /// No chunk of the case is sent on it.
    #[default]
    Unused,
    /// Still open when the run ended at the timeout.
    Open,
    /// End of file from the server.
    ClosedByServer,
    ResetByServer,
    /// A RESET chunk closed it abortively.
    ResetByUs,
    /// It could not connect (the first connection's failure is an error of the whole run).
    Unreached(io::Error),
}

/// Plays `input` (a comux file, else one connection's bytes) against `server`. An error when
/// the first connection cannot be made or a read fails unexpectedly; what the server did
/// otherwise is in [`Played`].
pub fn play(server: &Server, input: &[u8], pacing: Pacing) -> Result<Played> {
    let (num_conns, steps) = steps(input);
    let now = Instant::now();
    let mut conns: Vec<Conn> = (0..num_conns).map(|_| Conn::default()).collect();
    for s in &steps {
        conns[s.conn].to_send += s.data.len();
    }
    let mut player = Player {
        server,
        pacing,
        steps,
        next: 0,
        writing: None,
        awaiting: None,
        kept_open: Vec::new(),
        socks: (0..num_conns).map(|_| None).collect(),
        reading: vec![false; num_conns],
        stopped: vec![false; num_conns],
        last_recv: vec![now; num_conns],
        conns,
        transcript: Vec::new(),
        opened_any: false,
        send_at: now,
        last_event: now,
    };
    let blocked = player.run()?;
    let timed_out = blocked.is_some() || player.reading.iter().any(|&r| r);
    for (conn, reading) in player.conns.iter_mut().zip(&player.reading) {
        if *reading {
            conn.end = End::Open;
        }
    }
    Ok(Played { conns: player.conns, transcript: player.transcript, timed_out, blocked })
}

/// One chunk as it is played.
struct Step<'a> {
    conn: usize,
    flags: u32,
    data: &'a [u8],
    /// Its connection's last chunk.
    last: bool,
}

/// The chunks in play order and the number of connections, read as every reader reads them.
fn steps(input: &[u8]) -> (usize, Vec<Step<'_>>) {
    let Some(file) = comux::parse(input) else {
        return (1, vec![Step { conn: 0, flags: 0, data: input, last: true }]);
    };
    let steps = file
        .schedule()
        .filter_map(|i| {
            let c = file.chunk(i)?;
            Some(Step { conn: c.conn as usize, flags: c.flags, data: c.data, last: file.is_last_of_conn(i) })
        })
        .collect();
    (file.num_conns as usize, steps)
}

/// The chunk being sent: step index, bytes sent, whether the server's buffer is full, and
/// how much its connection had received when it started (an AWAIT's reply may start early).
struct Writing {
    step: usize,
    at: usize,
    blocked: bool,
    base: usize,
}

/// An AWAIT: its connection, how much it had received when the chunk started, and when the
/// chunk was sent.
struct Awaiting {
    conn: usize,
    base: usize,
    since: Instant,
}

struct Player<'a> {
    server: &'a Server,
    pacing: Pacing,
    steps: Vec<Step<'a>>,
    /// The next step to start.
    next: usize,
    writing: Option<Writing>,
    awaiting: Option<Awaiting>,
    /// KEEP_OPEN connections whose last chunk is sent, waiting for their half-close.
    kept_open: Vec<usize>,
    socks: Vec<Option<TcpStream>>,
    /// Connections whose reply has not ended yet.
    reading: Vec<bool>,
    /// Connections whose later chunks are skipped (reset by us, a send failed, no connection).
    stopped: Vec<bool>,
    last_recv: Vec<Instant>,
    conns: Vec<Conn>,
    transcript: Vec<(u32, Vec<u8>)>,
    /// Whether a connection has been made yet: the first failing is the user's error.
    opened_any: bool,
    /// A BYTEWISE chunk's next byte is not sent before this.
    send_at: Instant,
    /// When a byte was last sent or received, on any connection.
    last_event: Instant,
}

impl Player<'_> {
    /// Until every connection is closed, or the timeout: then the connection whose chunk
    /// could not be sent, if one could not.
    fn run(&mut self) -> Result<Option<u32>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            self.end_await(now);
            if self.awaiting.is_none() && now >= self.send_at {
                self.send()?;
            }
            let now = Instant::now();
            let all_sent = self.all_sent();
            self.kept_open.retain(|&c| self.reading[c]);
            if all_sent && !self.kept_open.is_empty() && now >= self.last_event + self.pacing.keep_open_quiet {
                for c in self.kept_open.drain(..) {
                    if let Some(sock) = &self.socks[c] {
                        let _ = sock.shutdown(Shutdown::Write);
                    }
                }
                self.last_event = now;
            }
            if all_sent && !self.reading.iter().any(|&r| r) {
                return Ok(None);
            }
            let blocked = self.writing.as_ref().filter(|w| w.blocked).map(|w| self.steps[w.step].conn as u32);
            let stuck = (all_sent && self.kept_open.is_empty()) || blocked.is_some();
            if stuck && now >= self.last_event + self.pacing.timeout {
                return Ok(blocked);
            }
            self.wait(now)?;
            self.read_all(&mut buf)?;
        }
    }

    fn all_sent(&self) -> bool {
        self.next == self.steps.len() && self.writing.is_none() && self.awaiting.is_none()
    }

    /// An AWAIT ends once its reply has started and gone quiet, the connection has ended, or
    /// the timeout has passed.
    fn end_await(&mut self, now: Instant) {
        let Some(a) = &self.awaiting else { return };
        let replied = self.conns[a.conn].reply.len() > a.base;
        if !self.reading[a.conn]
            || (replied && now >= self.last_recv[a.conn] + self.pacing.await_quiet)
            || now >= a.since + self.pacing.timeout
        {
            self.awaiting = None;
        }
    }

    /// Sends what can be sent now: chunk after chunk, until one must wait (a full buffer, a
    /// BYTEWISE pause, an AWAIT) or the schedule is done.
    fn send(&mut self) -> Result<()> {
        loop {
            let Some(w) = &mut self.writing else {
                let Some(step) = self.steps.get(self.next) else { return Ok(()) };
                let c = step.conn;
                self.next += 1;
                if self.stopped[c] {
                    continue;
                }
                if self.socks[c].is_none() && !self.open(c)? {
                    continue;
                }
                let base = self.conns[c].reply.len();
                self.writing = Some(Writing { step: self.next - 1, at: 0, blocked: false, base });
                continue;
            };
            let step = &self.steps[w.step];
            let c = step.conn;
            let sock = self.socks[c].as_mut().expect("a chunk is sent on an open connection");
            while w.at < step.data.len() {
                let bytewise = step.flags & BYTEWISE != 0 && w.at < comux::BYTEWISE_MAX;
                let end = if bytewise { w.at + 1 } else { step.data.len() };
                match sock.write(&step.data[w.at..end]) {
                    Ok(n) => {
                        w.at += n;
                        self.conns[c].sent += n;
                        self.last_event = Instant::now();
                        if bytewise && w.at < step.data.len() {
                            self.send_at = self.last_event + self.pacing.byte_pause;
                            return Ok(());
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        w.blocked = true;
                        return Ok(());
                    }
                    Err(e) => {
                        self.conns[c].send_error = Some(e);
                        self.stopped[c] = true;
                        break;
                    }
                }
            }
            let (step, base) = (w.step, w.base);
            self.writing = None;
            if !self.stopped[c] {
                self.after_chunk(step, base)?;
            }
            if self.awaiting.is_some() {
                return Ok(());
            }
        }
    }

    /// Connects connection `c` at its first chunk; false when it could not (then its chunks
    /// are skipped), an error when no connection could be made yet.
    fn open(&mut self, c: usize) -> Result<bool> {
        let sock = match self.server.connect(self.pacing.timeout) {
            Ok(sock) => sock,
            Err(e) if !self.opened_any => return Err(self.server.unreachable(e, self.pacing.timeout)),
            Err(e) => {
                self.conns[c].end = End::Unreached(e);
                self.stopped[c] = true;
                return Ok(false);
            }
        };
        self.opened_any = true;
        sock.set_nonblocking(true).context("could not make a socket non-blocking")?;
        // Each chunk (each byte of a BYTEWISE one) leaves when it is written, not batched.
        sock.set_nodelay(true).context("could not set TCP_NODELAY")?;
        self.socks[c] = Some(sock);
        self.reading[c] = true;
        self.conns[c].end = End::Open;
        self.last_recv[c] = Instant::now();
        Ok(true)
    }

    /// After a chunk is wholly sent: its flags, and the half-close after a connection's last.
    /// `base`: what its connection had received when the chunk started.
    fn after_chunk(&mut self, step: usize, base: usize) -> Result<()> {
        let Step { conn: c, flags, last, .. } = self.steps[step];
        if flags & RESET != 0 {
            let sock = self.socks[c].take().expect("a chunk is sent on an open connection");
            // SO_LINGER {on, 0 s}: close() sends a RST and drops whatever is unread.
            setsockopt(&sock, sockopt::Linger, &libc::linger { l_onoff: 1, l_linger: 0 })
                .context("could not set SO_LINGER to reset a connection")?;
            drop(sock);
            if self.reading[c] {
                self.conns[c].end = End::ResetByUs;
            }
            self.reading[c] = false;
            self.stopped[c] = true;
            return Ok(());
        }
        if last {
            if flags & KEEP_OPEN != 0 {
                self.kept_open.push(c);
            } else if let Some(sock) = &self.socks[c] {
                // ENOTCONN when the server has reset it: the reads say so.
                let _ = sock.shutdown(Shutdown::Write);
            }
        }
        if flags & AWAIT != 0 {
            self.awaiting = Some(Awaiting { conn: c, base, since: Instant::now() });
        }
        Ok(())
    }

    /// Sleeps in poll until a connection can be read (or the blocked one written), or until
    /// the next thing this player does on its own: a BYTEWISE byte, the end of an AWAIT, the
    /// half-close of kept-open connections, the timeout.
    fn wait(&self, now: Instant) -> Result<()> {
        let p = &self.pacing;
        let blocked = self.writing.as_ref().filter(|w| w.blocked).map(|w| self.steps[w.step].conn);
        let all_sent = self.all_sent();
        // Only deadlines still ahead: one already past would make poll return at once, a spin.
        let mut until = now + p.timeout;
        if (all_sent && self.kept_open.is_empty()) || blocked.is_some() {
            until = until.min(self.last_event + p.timeout);
        }
        if let Some(a) = &self.awaiting {
            until = until.min(a.since + p.timeout);
            if self.conns[a.conn].reply.len() > a.base {
                until = until.min(self.last_recv[a.conn] + p.await_quiet);
            }
        } else if blocked.is_none() && !all_sent {
            until = until.min(self.send_at);
        }
        if all_sent && !self.kept_open.is_empty() {
            until = until.min(self.last_event + p.keep_open_quiet);
        }
        let mut fds: Vec<PollFd> = self
            .socks
            .iter()
            .enumerate()
            .filter_map(|(c, sock)| {
                let mut events = PollFlags::empty();
                if self.reading[c] {
                    events |= PollFlags::POLLIN;
                }
                if blocked == Some(c) {
                    events |= PollFlags::POLLOUT;
                }
                Some(PollFd::new(sock.as_ref()?.as_fd(), events)).filter(|_| !events.is_empty())
            })
            .collect();
        // Rounded up: a wait rounded down to 0 ms would spin until the deadline.
        let ms = until.saturating_duration_since(now).as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll failed"),
        }
        drop(fds);
        Ok(())
    }

    /// Reads every connection until it would block, each reply byte kept in arrival order.
    fn read_all(&mut self, buf: &mut [u8]) -> Result<()> {
        if let Some(w) = &mut self.writing {
            w.blocked = false; // tried again: it blocks again if the buffer is still full
        }
        for c in 0..self.socks.len() {
            let Some(sock) = self.socks[c].as_mut().filter(|_| self.reading[c]) else { continue };
            loop {
                match sock.read(buf) {
                    Ok(0) => {
                        self.conns[c].end = End::ClosedByServer;
                        self.reading[c] = false;
                        break;
                    }
                    Ok(n) => {
                        self.conns[c].reply.extend_from_slice(&buf[..n]);
                        match self.transcript.last_mut() {
                            Some((conn, bytes)) if *conn == c as u32 => bytes.extend_from_slice(&buf[..n]),
                            _ => self.transcript.push((c as u32, buf[..n].to_vec())),
                        }
                        let now = Instant::now();
                        (self.last_recv[c], self.last_event) = (now, now);
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // Student servers often close() with unread input, which the kernel turns into a RST.
                    Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted) => {
                        self.conns[c].end = End::ResetByServer;
                        self.reading[c] = false;
                        break;
                    }
                    Err(e) => return Err(e).with_context(|| format!("could not read the reply of connection {c}")),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comux::{Chunk, Comux};
    use std::net::TcpListener;
    use std::thread::{self, JoinHandle};

    /// A comux file of `(conn, flags, data)` chunks, in play order.
    fn file(chunks: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let chunks: Vec<Chunk> =
            chunks.iter().map(|&(conn, flags, data)| Chunk { conn, flags, data: data.to_vec() }).collect();
        let conns = chunks.iter().map(|c| c.conn + 1).max().unwrap_or(1);
        let bytes = Comux { conns, chunks }.to_bytes();
        assert!(comux::is_comux(&bytes), "a test of the player plays comux files");
        bytes
    }

    /// A loopback server whose thread runs `serve` on the listener.
    fn server<T: Send + 'static>(serve: impl FnOnce(TcpListener) -> T + Send + 'static) -> (Server, JoinHandle<T>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        (Server::resolve("127.0.0.1", port).unwrap(), thread::spawn(move || serve(listener)))
    }

    fn pacing() -> Pacing {
        Pacing::new(Duration::from_secs(5))
    }

    /// Reads until end of file or an error: the bytes, and the error that ended it if one did.
    fn read_until_end(s: &mut TcpStream) -> (Vec<u8>, Option<ErrorKind>) {
        let (mut got, mut buf) = (Vec::new(), [0u8; 256]);
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (got, None),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return (got, Some(e.kind())),
            }
        }
    }

    #[test]
    fn each_connection_gets_its_own_reply() {
        let (srv, handle) = server(|l| {
            let handlers: Vec<_> = (0..2)
                .map(|_| {
                    let mut s = l.accept().unwrap().0;
                    thread::spawn(move || {
                        let (got, _) = read_until_end(&mut s);
                        s.write_all(&[b"reply to ", &got[..]].concat()).unwrap();
                    })
                })
                .collect();
            handlers.into_iter().for_each(|h| h.join().unwrap());
        });
        let played = play(&srv, &file(&[(0, 0, b"A"), (1, 0, b"B")]), pacing()).unwrap();
        handle.join().unwrap();
        assert!(!played.timed_out);
        assert_eq!(played.conns[0].reply, b"reply to A");
        assert_eq!(played.conns[1].reply, b"reply to B");
        assert!(played.conns.iter().all(|c| matches!(c.end, End::ClosedByServer) && c.sent == c.to_send));
        let mut heard: Vec<(u32, &[u8])> = played.transcript.iter().map(|(c, b)| (*c, &b[..])).collect();
        heard.sort();
        assert_eq!(heard, [(0, &b"reply to A"[..]), (1, b"reply to B")]);
    }

    #[test]
    fn bytewise_arrives_in_many_reads() {
        let (srv, handle) = server(|l| {
            let mut s = l.accept().unwrap().0;
            let (mut got, mut reads, mut buf) = (Vec::new(), 0, [0u8; 64]);
            loop {
                match s.read(&mut buf).unwrap() {
                    0 => return (got, reads),
                    n => {
                        got.extend_from_slice(&buf[..n]);
                        reads += 1;
                    }
                }
            }
        });
        let request = b"GET / HTTP/1.0\r\n\r\n";
        let played = play(&srv, &file(&[(0, BYTEWISE, request)]), pacing()).unwrap();
        let (got, reads) = handle.join().unwrap();
        assert_eq!(got, request);
        assert!(reads > 1, "the server read the request in {reads} read(s)");
        assert_eq!(played.conns[0].sent, request.len());
    }

    #[test]
    fn reset_closes_abortively() {
        let (srv, handle) = server(|l| read_until_end(&mut l.accept().unwrap().0).1);
        let played = play(&srv, &file(&[(0, RESET, b"GET /")]), pacing()).unwrap();
        // A graceful close would be an end of file (None) here.
        assert_eq!(handle.join().unwrap(), Some(ErrorKind::ConnectionReset));
        assert!(matches!(played.conns[0].end, End::ResetByUs));
    }

    #[test]
    fn reset_leaves_what_the_server_sent_unread_and_skips_later_chunks() {
        let (srv, handle) = server(|l| {
            let mut s = l.accept().unwrap().0;
            // Whether this arrives before the reset or meets it is a race; unread it is either way.
            let _ = s.write_all(b"hello first");
            read_until_end(&mut s)
        });
        let played = play(&srv, &file(&[(0, RESET, b"GET /"), (0, 0, b"never")]), pacing()).unwrap();
        let (got, end) = handle.join().unwrap();
        assert!(end.is_none() || end == Some(ErrorKind::ConnectionReset), "{end:?}");
        assert!(!got.ends_with(b"never"), "{got:?}");
        let conn = &played.conns[0];
        assert!(conn.reply.is_empty(), "read before the reset: {:?}", conn.reply);
        assert_eq!((conn.sent, conn.to_send), (5, 10));
        assert!(matches!(conn.end, End::ResetByUs) && !played.timed_out);
    }

    #[test]
    fn keep_open_is_half_closed_only_after_the_reply() {
        let (srv, handle) = server(|l| {
            let mut s = l.accept().unwrap().0;
            let (mut got, mut buf) = (Vec::new(), [0u8; 256]);
            while !got.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "end of file before the request was whole");
                got.extend_from_slice(&buf[..n]);
            }
            // Time enough for a half-close sent after the request to arrive.
            thread::sleep(Duration::from_millis(50));
            s.set_nonblocking(true).unwrap();
            let eof_before_reply = !matches!(s.read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
            s.set_nonblocking(false).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
            let (_, end) = read_until_end(&mut s);
            (eof_before_reply, end)
        });
        let played = play(&srv, &file(&[(0, KEEP_OPEN, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")]), pacing()).unwrap();
        let (eof_before_reply, end) = handle.join().unwrap();
        assert!(!eof_before_reply, "the server saw the end of the request before it answered");
        assert_eq!(end, None, "the half-close came once the reply was there");
        assert!(played.conns[0].reply.starts_with(b"HTTP/1.1 200 OK"));
        assert!(matches!(played.conns[0].end, End::ClosedByServer) && !played.timed_out);
    }

    #[test]
    fn await_sends_the_next_chunk_after_the_reply() {
        let (srv, handle) = server(|l| {
            let mut first = l.accept().unwrap().0;
            let second = thread::spawn(move || {
                let mut s = l.accept().unwrap().0;
                s.read_exact(&mut [0u8; 1]).unwrap();
                Instant::now()
            });
            first.read_exact(&mut [0u8; 1]).unwrap();
            thread::sleep(Duration::from_millis(50));
            first.write_all(b"reply").unwrap();
            let replied = Instant::now();
            (replied, second.join().unwrap())
        });
        let played = play(&srv, &file(&[(0, AWAIT, b"A"), (1, 0, b"B")]), pacing()).unwrap();
        let (replied, second_arrived) = handle.join().unwrap();
        assert!(
            second_arrived >= replied + Duration::from_millis(90),
            "the second chunk came {:?} after the reply, not after it had been quiet",
            second_arrived.saturating_duration_since(replied)
        );
        assert_eq!(played.transcript.first(), Some(&(0, b"reply".to_vec())));
    }

    #[test]
    fn a_later_connection_refused_is_reported_and_the_run_goes_on() {
        let (srv, handle) = server(|l| {
            let mut s = l.accept().unwrap().0;
            s.read_exact(&mut [0u8; 1]).unwrap();
            drop(l); // the server stops listening (as if it had crashed)
            s.write_all(b"bye").unwrap();
        });
        let played = play(&srv, &file(&[(0, AWAIT, b"A"), (1, 0, b"B")]), pacing()).unwrap();
        handle.join().unwrap();
        assert_eq!(played.conns[0].reply, b"bye");
        assert!(matches!(&played.conns[1].end, End::Unreached(e) if e.kind() == ErrorKind::ConnectionRefused));
        assert!(!played.timed_out);
    }

    #[test]
    fn the_first_connection_refused_is_the_users_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = play(&Server::resolve("127.0.0.1", port).unwrap(), b"GET /", pacing()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Could not connect to 127.0.0.1:{port}: connection refused. Is the server running and listening on port {port}?"
            )
        );
    }

    #[test]
    fn a_silent_open_connection_times_out() {
        let (srv, handle) = server(|l| {
            let mut s = l.accept().unwrap().0;
            let got = read_until_end(&mut s);
            thread::sleep(Duration::from_millis(600));
            got
        });
        let started = Instant::now();
        let pacing = Pacing { timeout: Duration::from_millis(300), ..pacing() };
        let played = play(&srv, &file(&[(0, 0, b"A"), (1, KEEP_OPEN, b"B")]), pacing).unwrap();
        assert!(started.elapsed() < Duration::from_millis(550), "{:?}", started.elapsed());
        assert!(played.timed_out);
        assert!(matches!(played.conns[0].end, End::Open), "{:?}", played.conns[0].end);
        handle.join().unwrap();
    }
}
