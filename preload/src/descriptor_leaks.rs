//! Descriptor-leak oracle: a test case after which the server holds more descriptors than before
//! it, every time it is played, leaks them (a file it opened per request, a connection it never
//! closed after the client reset it).
//!
//! In the run's process, when it accepted the connections (fork-per-connection servers: the
//! parent, whose copy it must close; the children exit), once the test case ended normally and
//! the server waits again (`settle`). The baseline is what was open as the test case began (the
//! listener, anything opened at start-up; in persistent mode what earlier test cases left), and
//! ours never count (`fds`). Growth alone is not a leak: a log file opened at the first request
//! stays open for good. So the test case is played again in the same process, up to [`REPLAYS`]
//! times, and only descriptors of a kind (a file's path, a client's connection, a pipe...) that
//! grows in every replay are a leak: the run dies by [`SIG_FD_LEAK`], and the finding file says
//! what they are, one kind a line.
//!
//! Growth is looked at once `/proc` says the server sleeps (`settle::until_asleep`: an epoll
//! server may yet have to close a connection its client reset).
//!
//! Cost: two `poll`s of [`WINDOW`] descriptors per test case (2.5 µs each, measured; listing
//! `/proc/self/fd` took 11 µs), the
//! kinds of new ones only on growth, and replays only for a kind not seen before: a file that
//! grew once and not again (opened once) and what was confirmed as a leak are remembered across
//! the runs of a fork server (a page mapped before it starts), so a server that opens its log at
//! the first request is replayed once per campaign, not once per run.

use crate::log::{self, debug};
use crate::page::{Page, ZeroIsValid};
use crate::state::{config, LISTEN_FD};
use crate::{end, fds, finding, real, settle, shared, sockets};
use contract::verdicts::SIG_FD_LEAK;
use libc::c_int;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU64, AtomicUsize};

/// Descriptors looked at: a new one takes the lowest free number, so growth shows below this
/// unless the server holds nearly as many already.
const WINDOW: usize = 128;
/// Replays of a test case whose descriptors grew, each of which must grow them again.
pub const REPLAYS: usize = 2;

/// The server's open descriptors below [`WINDOW`], ours left out.
pub struct Open([u64; WINDOW / 64]);

impl Open {
    /// Now, from one `poll` (a closed descriptor says `POLLNVAL`): cheap enough for every run.
    pub fn now() -> Open {
        let mut pfds = [libc::pollfd { fd: -1, events: 0, revents: 0 }; WINDOW];
        for (fd, pfd) in pfds.iter_mut().enumerate() {
            pfd.fd = fd as c_int;
        }
        // SAFETY: valid pollfds, no events asked, no wait; our own poll, not the hook.
        unsafe { real::poll(pfds.as_mut_ptr(), WINDOW as libc::nfds_t, 0) };
        let mut open = Open([0; WINDOW / 64]);
        for pfd in pfds.iter().filter(|p| p.revents & libc::POLLNVAL == 0 && !fds::ours(p.fd)) {
            open.0[pfd.fd as usize / 64] |= 1 << (pfd.fd % 64);
        }
        open
    }

    fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// Descriptors open now that were not in `before`.
    fn new_since<'a>(&'a self, before: &'a Open) -> impl Iterator<Item = c_int> + 'a {
        (0..WINDOW)
            .filter(move |&fd| {
                let bit = 1u64 << (fd % 64);
                self.0[fd / 64] & bit != 0 && before.0[fd / 64] & bit == 0
            })
            .map(|fd| fd as c_int)
    }
}

/// The kinds of the descriptors opened from `before` to `after`, each once, when there are more
/// than before; None when there are not. A new listening socket does not count: the client
/// plays the first test case from the first `listen`, while the server may still be making
/// its others (one per address family).
fn grown(before: &Open, after: &Open) -> Option<Vec<Vec<u8>>> {
    if after.count() <= before.count() {
        return None;
    }
    let (mut kinds, mut listeners): (Vec<Vec<u8>>, u32) = (Vec::new(), 0);
    for fd in after.new_since(before) {
        let k = kind(fd);
        if k == LISTENER.as_bytes() {
            listeners += 1;
        } else if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    (after.count() - listeners > before.count()).then_some(kinds)
}

/// After a test case that ended normally in the run's process, which accepted its connections:
/// `before` and `after` it. Dies by [`SIG_FD_LEAK`] on a leak; `replay` plays the test case once
/// more in this process (it returns once the server waits again).
pub fn check(before: &Open, after: &Open, mut replay: impl FnMut()) {
    if !config().leaks {
        return;
    }
    if after.count() <= before.count() {
        return;
    }
    settle::until_asleep();
    let Some(first) = grown(before, &Open::now()) else { return };
    let memo = memo();
    let known: Vec<Vec<u8>> = first.iter().filter(|k| memo.leaked.has(k)).cloned().collect();
    if !known.is_empty() {
        found(&known);
    }
    if first.iter().all(|k| memo.once.has(k)) {
        return;
    }
    debug!(
        "the server holds more descriptors than before the test case ({}): playing it again",
        first.iter().map(|k| String::from_utf8_lossy(k)).collect::<Vec<_>>().join("; ")
    );
    let mut leaked = first.clone();
    for _ in 0..REPLAYS {
        if shared::forked_alive() {
            return; // what the server forked still runs: a replay would not be the same
        }
        let before = Open::now();
        replay();
        settle::until_asleep();
        let again = grown(&before, &Open::now()).unwrap_or_default();
        leaked.retain(|k| again.contains(k));
        if leaked.is_empty() {
            break;
        }
    }
    // Only a file or a folder is opened once for good (a log); a connection, a pipe or a socket
    // that grew once and not again may leak on another input, and is looked at again.
    let path = |k: &[u8]| k.starts_with(b"file ") || k.starts_with(b"directory ");
    for k in first.iter().filter(|k| !leaked.contains(k) && path(k)) {
        memo.once.add(k);
    }
    if !leaked.is_empty() {
        leaked.iter().for_each(|k| memo.leaked.add(k));
        found(&leaked);
    }
}

/// What descriptor `fd` is, in words: `file PATH`, `directory PATH`, `a client's connection
/// (TCP socket)`, `a pipe`, ... (no inode numbers: the same kind in every run).
fn kind(fd: c_int) -> Vec<u8> {
    let link = format!("/proc/self/fd/{fd}\0");
    let mut target = [0u8; 4096];
    // SAFETY: a C string and a buffer of the size given; readlink is not one of our hooks.
    let n = unsafe { libc::readlink(link.as_ptr().cast(), target.as_mut_ptr().cast(), target.len()) };
    let target = &target[..n.max(0) as usize];
    if target.starts_with(b"socket:") {
        return socket_kind(fd).into();
    }
    if target.starts_with(b"pipe:") {
        return b"a pipe".to_vec();
    }
    if let Some(name) = target.strip_prefix(b"anon_inode:") {
        return match name {
            b"[eventpoll]" => b"an epoll instance".to_vec(),
            b"[eventfd]" => b"an eventfd".to_vec(),
            b"[timerfd]" => b"a timerfd".to_vec(),
            b"[signalfd]" => b"a signalfd".to_vec(),
            b"inotify" => b"an inotify instance".to_vec(),
            other => [b"an anonymous descriptor ", other].concat(),
        };
    }
    if target.first() == Some(&b'/') {
        // SAFETY: `struct stat` is plain data, valid when zeroed; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a descriptor number and a `struct stat` to fill.
        let dir = unsafe { libc::fstat(fd, &mut st) } == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        return [if dir { &b"directory "[..] } else { b"file " }, target].concat();
    }
    target.to_vec()
}

const LISTENER: &str = "a listening TCP socket";

fn socket_kind(fd: c_int) -> &'static str {
    let option = |name| {
        let mut v: c_int = 0;
        let mut len = size_of::<c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` are valid for writes of the sizes given.
        let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&raw mut v).cast(), &mut len) };
        (r == 0).then_some(v)
    };
    match (option(libc::SO_DOMAIN), option(libc::SO_TYPE)) {
        (Some(libc::AF_UNIX), _) => "a UNIX socket",
        (Some(libc::AF_INET | libc::AF_INET6), Some(libc::SOCK_STREAM)) => {
            let port = |fd| sockets::connect_addr(fd).map(|a| a.port());
            if option(libc::SO_ACCEPTCONN) == Some(1) {
                LISTENER
            } else if port(fd).is_some() && port(fd) == port(LISTEN_FD.load(SeqCst)) {
                "a client's connection (TCP socket)"
            } else {
                "a TCP socket"
            }
        }
        (Some(libc::AF_INET | libc::AF_INET6), Some(libc::SOCK_DGRAM)) => "a UDP socket",
        (Some(libc::AF_NETLINK), _) => "a netlink socket",
        _ => "a socket",
    }
}

/// Reports the leak (stderr and `SOCKFUZZ_FINDING_FILE`, one kind a line) and dies by
/// [`SIG_FD_LEAK`].
fn found(kinds: &[Vec<u8>]) -> ! {
    let what: Vec<String> = kinds.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    log::error(format_args!(
        "descriptor leak: each time the test case was played ({} times in this process), the server kept more \
         descriptors open after it: {}",
        REPLAYS + 1,
        what.join("; ")
    ));
    if let Some(mut file) = finding::Writer::create() {
        for k in kinds {
            file.escaped(k);
            file.put(b"\n");
        }
    }
    end::die_by(SIG_FD_LEAK)
}

/// Kinds remembered across the runs of a fork server, by hash: those that grew once and not
/// again, and those confirmed as leaks.
#[repr(C)]
struct Memo {
    once: Kinds,
    leaked: Kinds,
}

/// A small set of kinds (FNV-1a hashes, never 0), the oldest forgotten when full.
#[repr(C)]
struct Kinds {
    hashes: [AtomicU64; 32],
    added: AtomicUsize,
}

impl Kinds {
    const fn new() -> Kinds {
        Kinds { hashes: [const { AtomicU64::new(0) }; 32], added: AtomicUsize::new(0) }
    }

    fn has(&self, kind: &[u8]) -> bool {
        let h = hash(kind);
        self.hashes.iter().any(|s| s.load(SeqCst) == h)
    }

    fn add(&self, kind: &[u8]) {
        if !self.has(kind) {
            let slot = self.added.fetch_add(1, SeqCst) % self.hashes.len();
            self.hashes[slot].store(hash(kind), SeqCst);
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    h.max(1)
}

/// Used until `init` has mapped the page (and if it cannot).
static MEMO: Page<Memo> = Page::new(Memo { once: Kinds::new(), leaked: Kinds::new() });

// SAFETY: atomics only.
unsafe impl ZeroIsValid for Memo {}

fn memo() -> &'static Memo {
    MEMO.get()
}

/// Map the memo's page, shared by every run the fork server forks (called before it starts).
pub fn init() {
    MEMO.map();
}
