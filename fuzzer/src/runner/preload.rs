//! Where the sockfuzz preload library is, and what its exit statuses mean.

use anyhow::{bail, Result};
use contract::env;
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

pub use contract::verdicts::*;

/// ASan settings for every run of a target: findings end in a signal the fork server sees
/// (`abort_on_error`), the signals a plain build dies from stay those signals (`handle_*=0`),
/// LeakSanitizer on for the preload's leak check after a test case (`memory_leaks`) but not at
/// exit (a connection's child that exits without freeing is no finding, and the check would end
/// it by SIGABRT), and no complaint that our preload comes before the ASan runtime. While
/// fuzzing, [`FUZZING_ASAN`] is added.
pub const ASAN_OPTIONS: &str = "abort_on_error=1:handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:\
detect_leaks=1:leak_check_at_exit=0:symbolize=1:verify_asan_link_order=0:allocator_may_return_null=1";

/// The memory a server may use, in MB, unless told otherwise (`-m`): the preload caps a plain
/// build's address space (`SOCKFUZZ_MEM_LIMIT_MB`); in an ASan build (whose shadow memory takes
/// terabytes of address space) no one allocation may be larger (`max_allocation_size_mb`, as
/// GCC's libasan has no limit on the total). Either way the allocation past it returns NULL
/// (`allocator_may_return_null`).
pub const DEFAULT_MEM_LIMIT_MB: u64 = 2048;

/// The environment that gives a server `mb` megabytes (0: no limit), with `asan` the ASan
/// options it would otherwise get.
pub fn memory_env(mb: u64, asan: &str) -> [(&'static str, String); 2] {
    [(env::name(env::MEM_LIMIT_MB), mb.to_string()), ("ASAN_OPTIONS", format!("{asan}:max_allocation_size_mb={mb}"))]
}

/// Added while fuzzing: no symbolizing (reports nobody reads) and short allocation stacks:
/// LeakSanitizer reports no leak whose stack has fewer than 2 frames (measured: with 1 a
/// `strndup` never freed goes unseen), and each frame costs about 10 ns per `malloc`.
pub const FUZZING_ASAN: &str = "symbolize=0:malloc_context_size=4";

/// `libsockfuzz.so`: `$SOCKFUZZ_LIB`, else next to our own executable (the cargo target dir).
pub fn library() -> Result<PathBuf> {
    match std::env::var_os(env::name(env::LIB)) {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                bail!("SOCKFUZZ_LIB points to {}, which does not exist", path.display());
            }
            Ok(path)
        }
        None => crate::locate::sibling("libsockfuzz.so"),
    }
}

/// Set when the start-up check found that the server cannot start in a network namespace of
/// its own: every later run of this process (the campaign's fork servers, which are forked from
/// it, and triage) is on the host's network.
static HOST_NETWORK: AtomicBool = AtomicBool::new(false);

/// From now on, servers run on the host's network (`SOCKFUZZ_NETNS=0`).
pub fn use_host_network() {
    HOST_NETWORK.store(true, Ordering::Relaxed);
}

/// Whether [`use_host_network`] was called.
pub fn on_host_network() -> bool {
    HOST_NETWORK.load(Ordering::Relaxed)
}

/// `SOCKFUZZ_NETNS`: each copy of the server in a network namespace of its own (loopback only),
/// where the kernel lets us make one (as root, or in a user namespace of our own), unless our
/// own environment says `SOCKFUZZ_NETNS=0` (a server that must reach the host's network) or
/// the start-up check moved the server to the host's network ([`use_host_network`]); else "0".
pub fn netns() -> &'static str {
    if on_host_network() {
        return "0";
    }
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let allowed = *ALLOWED.get_or_init(|| {
        if std::env::var_os(env::name(env::NETNS)).is_some_and(|v| v == "0") {
            return false;
        }
        // A child tries what the preload will do at the server's start-up.
        // SAFETY: the child only makes system calls (unshare, _exit) before it exits; the
        // parent waits for it.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let ok = unshare(CloneFlags::CLONE_NEWNET).is_ok()
                    || unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET).is_ok();
                // SAFETY: _exit ends the child at once, with no Rust clean-up (the parent's).
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            Ok(ForkResult::Parent { child }) => matches!(waitpid(child, None), Ok(WaitStatus::Exited(_, 0))),
            Err(_) => false,
        }
    });
    if allowed {
        "1"
    } else {
        "0"
    }
}

/// A readable name for a signal number, e.g. `11 (SIGSEGV)`.
pub fn signal_name(sig: i32) -> String {
    match short_signal_name(sig) {
        Some(name) => format!("{sig} ({name})"),
        None => sig.to_string(),
    }
}

/// `SIGSEGV` for 11; None for a signal without a name here.
pub fn short_signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGPIPE => "SIGPIPE",
        SIG_FD_LEAK => "SIGSTKFLT",
        SIG_MEM_LEAK => "SIGPWR",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGINT => "SIGINT",
        _ => return None,
    })
}

/// What the preload wrote in the finding file about a leak: its lines (one descriptor kind
/// each) as one line.
pub fn leak_detail(finding: &str) -> String {
    finding.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}
