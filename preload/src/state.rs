//! Process-wide state shared by the hooks (server threads), the client thread and the policies:
//! the bottom layer, which imports nothing of the preload. Every other module reads and writes
//! the run through it and owns the policy built on top.
//!
//! Plain atomics: hooks run on arbitrary server threads, possibly inside signal handlers, so no
//! locks. A process forked by the server inherits a copy, which is what we want (its reads of
//! our connection still count towards the EOF spin); what its other processes must see of each
//! other is in `shared`.

use contract::env;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32};
use std::sync::OnceLock;

// The run's connection (`connection`, `fork`, `settle`).

/// Set once, by the first `listen()` on a TCP socket: the client has been started.
pub static TRIGGERED: AtomicBool = AtomicBool::new(false);
/// The listening socket the client connects to.
pub static LISTEN_FD: AtomicI32 = AtomicI32::new(-1);
/// The run's process closed its listening socket (the fork server's copy keeps it open, so the
/// kernel cannot refuse or reset what comes later: `play` does, as the kernel would have).
pub static LISTENER_CLOSED: AtomicBool = AtomicBool::new(false);
/// This process accepted one of our connections (what every process of the server sees is in
/// `shared`).
pub static ACCEPTED: AtomicBool = AtomicBool::new(false);
/// The server's fds of our connections in this process (taken out as the server closes them).
pub static CONN_FDS: Slots = Slots::new(-1);
/// The server's fd of connection i of the test case, in the process that accepted it (-1: not
/// here), for the blocked-client verdict (`play`).
pub static FD_OF_CONN: [AtomicI32; MAX_CONNS] = [const { AtomicI32::new(-1) }; MAX_CONNS];
/// Consecutive zero-byte reads of our connections.
pub static EOF_READS: AtomicU32 = AtomicU32::new(0);
/// `fork()` calls in progress after accept (closes the race "EOF before fork returned").
pub static FORKING: AtomicI32 = AtomicI32::new(0);
/// Children forked after accept: each handles one of our connections (fork-per-connection
/// servers).
pub static CHILD_PIDS: Slots = Slots::new(0);
/// Children the server reaped itself after accept, and their wait statuses (same slots).
/// Recorded even before the child is listed: a child can die, and the server's SIGCHLD handler
/// reap it, before `fork()` has returned its pid to us.
pub static REAPED_PIDS: Slots = Slots::new(0);
pub static REAPED_STATUS: [AtomicI32; MAX_CONNS] = [const { AtomicI32::new(0) }; MAX_CONNS];
/// True in a process the server forked after accept (that process never ends the run itself).
pub static IN_SERVER_CHILD: AtomicBool = AtomicBool::new(false);

/// Connections one test case may open.
pub const MAX_CONNS: usize = contract::comux::MAX_CONNS as usize;

/// A small set of non-empty `i32`s (descriptors, pids) that hooks fill and empty from any
/// thread, also in signal handlers: lock-free slots, `empty` marking a free one.
pub struct Slots {
    cells: [AtomicI32; MAX_CONNS],
    empty: i32,
}

impl Slots {
    pub const fn new(empty: i32) -> Self {
        let mut cells = [const { AtomicI32::new(0) }; MAX_CONNS];
        let mut i = 0;
        while i < MAX_CONNS {
            cells[i] = AtomicI32::new(empty);
            i += 1;
        }
        Slots { cells, empty }
    }

    /// Put `value` in a free slot: its index, or None when all are taken.
    pub fn insert(&self, value: i32) -> Option<usize> {
        self.cells.iter().position(|c| c.compare_exchange(self.empty, value, SeqCst, SeqCst).is_ok())
    }

    /// Overwrite slot `slot` (one this caller claimed with `insert`).
    pub fn set(&self, slot: usize, value: i32) {
        self.cells[slot].store(value, SeqCst);
    }

    /// Take `value` out: whether it was there.
    pub fn remove(&self, value: i32) -> bool {
        // Loads first: a `close` of any descriptor comes here, and a compare-exchange per slot
        // would cost each of them a microsecond.
        let holds = |c: &AtomicI32| c.load(SeqCst) == value;
        value != self.empty
            && self
                .cells
                .iter()
                .filter(|c| holds(c))
                .any(|c| c.compare_exchange(value, self.empty, SeqCst, SeqCst).is_ok())
    }

    /// The slot holding `value`.
    pub fn find(&self, value: i32) -> Option<usize> {
        (value != self.empty).then(|| self.cells.iter().position(|c| c.load(SeqCst) == value)).flatten()
    }

    pub fn contains(&self, value: i32) -> bool {
        self.find(value).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.values().next().is_none()
    }

    /// The values held, in slot order.
    pub fn values(&self) -> impl Iterator<Item = i32> + '_ {
        self.cells.iter().map(|c| c.load(SeqCst)).filter(move |&v| v != self.empty)
    }

    pub fn clear(&self) {
        self.cells.iter().for_each(|c| c.store(self.empty, SeqCst));
    }
}

// Which server threads wait (`idle`, `threads`).

/// Server threads alive in this process (the main thread counts; our client thread does not).
pub static LIVE: AtomicU32 = AtomicU32::new(1);
/// Server threads inside a counted wait.
pub static WAITING: AtomicU32 = AtomicU32::new(0);
/// Server threads inside a wait without a timeout (also counted in `WAITING`).
pub static FOREVER: AtomicU32 = AtomicU32::new(0);
/// The server armed a timer (`alarm`, `setitimer`, a POSIX timer or a timerfd) at some point,
/// before the fork server started or during this run: it may act later on its own.
pub static TIMER_ARMED: AtomicBool = AtomicBool::new(false);
/// The client thread has sent the whole test case (every chunk of every connection).
pub static SENT: AtomicBool = AtomicBool::new(false);
/// Whether this run may end with the idle verdict (`SOCKFUZZ_IDLE` set, not a patient run).
pub static ON: AtomicBool = AtomicBool::new(false);
/// The eventfd the client thread polls; -1 before it exists (and in a connection's child).
pub static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

thread_local! {
    /// This thread is starting our client thread (which is not a server thread).
    pub static STARTING_CLIENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

// Persistent runs (`persist`).

/// Test cases this process has served before the current one.
pub static SERVED: AtomicU32 = AtomicU32::new(0);
/// The test case is played once more in the same process (`descriptor_leaks` confirms a leak).
pub static REPLAYING: AtomicBool = AtomicBool::new(false);

/// Whether the current test case runs in a process that served earlier ones (or played it
/// already: a replay).
pub fn reused() -> bool {
    SERVED.load(SeqCst) > 0 || REPLAYING.load(SeqCst)
}

// The fuzzer's control page.

/// The fuzzer's control page (`SOCKFUZZ_CONTROL_SHM`), attached before the fork server starts.
static CONTROL: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

/// Attach the control page, if the fuzzer gave one. Before the fork server, so every run shares it.
pub fn attach_control() {
    if let Ok((page, len)) = contract::sysv::attach(env::CONTROL_SHM) {
        if len >= contract::control::LEN {
            CONTROL.store(page, SeqCst);
        }
    }
}

/// Byte `index` of the control page (0 without one); the fuzzer sets it before each run.
pub fn control(index: usize) -> u8 {
    let page = CONTROL.load(SeqCst);
    if page.is_null() {
        return 0;
    }
    // SAFETY: a non-null CONTROL is an attached segment of at least contract::control::LEN bytes, never
    // detached; volatile, as the fuzzer writes it between runs.
    unsafe { page.add(index.min(contract::control::LEN - 1)).read_volatile() }
}

/// The `u32` at `index` of the control page (native byte order; 0 without a page).
pub fn control_u32(index: usize) -> u32 {
    let page = CONTROL.load(SeqCst);
    if page.is_null() || index + 4 > contract::control::LEN {
        return 0;
    }
    // SAFETY: as in `control`, and `index + 4` is within the page.
    u32::from_ne_bytes(std::array::from_fn(|i| unsafe { page.add(index + i).read_volatile() }))
}

// The environment.

pub struct Config {
    pub debug: bool,
    /// Copy the reply to stdout.
    pub output: bool,
    /// Fd that gets one byte once the server listens.
    pub status_fd: Option<i32>,
    /// `SOCKFUZZ_IDLE=MS`: end a run whose server has sat idle with the connection open for MS
    /// milliseconds (`idle`); unset: never.
    pub idle: Option<std::time::Duration>,
    /// `SOCKFUZZ_EOF_SPIN=0`: a server that keeps reading end-of-file is left to spin (triage
    /// takes its call stack), not ended with `EXIT_EOF_SPIN`.
    pub eof_spin: bool,
    /// `SOCKFUZZ_PERSISTENT=N`: serve up to N test cases per process (`persist`); 0 or 1: one.
    pub persistent: u32,
    /// Upper bound on waiting for the server to go idle after it closed the connection.
    pub settle_ms: u64,
    /// `SOCKFUZZ_ROOT`: the server's web root, made absolute against the working directory of
    /// the moment (the server may change it later); `None` turns the path-traversal oracle off.
    /// `paths` builds its checker from it.
    pub root: Option<std::ffi::OsString>,
    /// `SOCKFUZZ_INPUT_FILE`: the test case, when it does not come from the fuzzer's shared
    /// memory; unset: stdin.
    pub input_file: Option<std::path::PathBuf>,
    /// `SOCKFUZZ_FINDING_FILE`: where an oracle's finding is described.
    pub finding_file: Option<std::ffi::CString>,
    /// `SOCKFUZZ_ERROR_FILE`: where the reason is written when the server cannot be driven.
    pub error_file: Option<std::path::PathBuf>,
    /// `SOCKFUZZ_LEAKS=0`: the descriptor-leak and memory-leak oracles are off.
    pub leaks: bool,
}

/// Read from the environment on first use (at the first `listen()`, never before).
pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Config {
            debug: var(env::name(env::DEBUG)).is_some_and(|v| v != "0"),
            output: var(env::name(env::OUTPUT)).is_none_or(|v| v != "0"),
            idle: var(env::name(env::IDLE)).and_then(|v| v.parse().ok()).map(std::time::Duration::from_millis),
            eof_spin: var(env::name(env::EOF_SPIN)).is_none_or(|v| v != "0"),
            status_fd: var(env::name(env::STATUS_FD)).and_then(|v| v.parse().ok()),
            persistent: var(env::name(env::PERSISTENT)).and_then(|v| v.parse().ok()).unwrap_or(0),
            settle_ms: var(env::name(env::SETTLE_MS)).and_then(|v| v.parse().ok()).unwrap_or(200),
            root: std::env::var_os(env::name(env::ROOT)).filter(|v| !v.is_empty()).map(absolute),
            input_file: std::env::var_os(env::name(env::INPUT_FILE)).filter(|v| !v.is_empty()).map(Into::into),
            error_file: std::env::var_os(env::name(env::ERROR_FILE)).filter(|v| !v.is_empty()).map(Into::into),
            leaks: var(env::name(env::LEAKS)).is_none_or(|v| v != "0"),
            finding_file: std::env::var_os(env::name(env::FINDING_FILE))
                .filter(|v| !v.is_empty())
                .and_then(|v| std::ffi::CString::new(v.into_encoded_bytes()).ok()),
        }
    })
}

/// `path` made absolute against the working directory, as given when there is none (or it is
/// not a path: "(unreachable)/..." outside a chroot). Lexical only: `paths` normalizes it.
fn absolute(path: std::ffi::OsString) -> std::ffi::OsString {
    if path.as_encoded_bytes().first() == Some(&b'/') {
        return path;
    }
    match std::env::current_dir() {
        Ok(cwd) if cwd.as_os_str().as_encoded_bytes().first() == Some(&b'/') => cwd.join(path).into_os_string(),
        _ => path,
    }
}
