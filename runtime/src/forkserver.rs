//! AFL++ fork server, old protocol (AFL++ < 4.20c; LibAFL's `ForkserverExecutor` accepts it).
//!
//! The fuzzer starts the program with `__AFL_SHM_ID` (a SysV shm id for the coverage map),
//! a control pipe on fd 198 (fuzzer -> us) and a status pipe on fd 199 (us -> fuzzer).
//! We send a 4-byte hello that also carries the map size, then per run: read 4 bytes
//! ("was killed"), fork, report the child's pid, wait for it, report its wait status.
//! Each child returns into the program. Without `__AFL_SHM_ID` or fd 199 it is a plain run.
//! Under our preload (which reads the test case itself) and with `__AFL_SHM_FUZZ_ID` (the
//! fuzzer's test-case segment), the hello also asks for test cases in shared memory and the
//! fuzzer answers which options it takes; the preload then reads each test case from there
//! ([`sockfuzz_shm_input`]) instead of stdin. A program that reads stdin itself keeps stdin.
//! The fork server and each child get SIGKILL when their parent dies (`PR_SET_PDEATHSIG`).
//!
//! Persistent mode (`__AFL_PERSISTENT` set, as LibAFL's `is_persistent` does): each child gets
//! a link to us ([`PERSIST_FD`]); when the preload says on it that a test case ended normally,
//! the fuzzer is told "stopped" (AFL++'s persistent answer) and the next run is handed to the
//! same child instead of a new fork.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use contract::env;
use contract::fds::{DONE, FORKSRV_CONTROL as CONTROL_FD, FORKSRV_STATUS as STATUS_FD, GO, PERSIST_FD};

use crate::coverage;
use crate::shm::{self, Shm};

/// Hello flags (AFL++ `config.h`; LibAFL `executors/forkserver.rs`).
const FS_OPT_ENABLED: u32 = 0x8000_0001;
const FS_OPT_MAPSIZE: u32 = 0x4000_0000;
const FS_OPT_SHDMEM_FUZZ: u32 = 0x0100_0000;
/// Largest map size the hello can encode (`FS_OPT_MAX_MAPSIZE`).
const FS_OPT_MAX_MAPSIZE: usize = 1 << 23;

/// `FS_OPT_SET_MAPSIZE`: the fuzzer decodes `((hello & 0x00fffffe) >> 1) + 1`.
const fn fs_opt_set_mapsize(size: usize) -> u32 {
    if size <= 1 || size > FS_OPT_MAX_MAPSIZE {
        0
    } else {
        ((size as u32 - 1) << 1) & 0x00ff_fffe
    }
}

static STARTED: AtomicBool = AtomicBool::new(false);
/// The test-case segment (u32 length, then the bytes), once the fuzzer agreed to use it.
static INPUT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

/// This run's test case when the fuzzer passes it in shared memory: a pointer to its length
/// (`u32`, native byte order) followed by its bytes; null when it comes on stdin. For the preload.
#[no_mangle]
pub extern "C" fn sockfuzz_shm_input() -> *const u8 {
    INPUT.load(Ordering::Relaxed)
}

/// Constructor: attach the coverage and CmpLog maps, then start the fork server unless deferred.
extern "C" fn init() {
    shm::attach();
    if !contract::cmplog::attach(env::AFL_CMPLOG_SHM_ID) {
        shm::warn(b"__AFL_CMPLOG_SHM_ID is not a usable CmpLog map: comparisons are not logged\n");
    }
    // SAFETY: NUL-terminated literal; getenv only reads the environment.
    if unsafe { libc::getenv(env::AFL_DEFER_FORKSRV.as_ptr()) }.is_null() {
        start_forkserver();
    }
}

/// The `.init_array` entry (exported so that `-Wl,-u,__sockfuzz_init` pulls it in).
#[used]
#[no_mangle]
#[link_section = ".init_array"]
pub static __sockfuzz_init: extern "C" fn() = init;

/// AFL++'s entry point for a deferred fork server (the preload calls it via `dlsym`).
#[no_mangle]
pub extern "C" fn __afl_manual_init() {
    start_forkserver();
}

/// Alias of [`__afl_manual_init`].
#[no_mangle]
pub extern "C" fn sockfuzz_start_forkserver() {
    start_forkserver();
}

/// Idempotent: the first call serves runs (and returns only in each forked child).
fn start_forkserver() {
    if STARTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let shm = shm::attach();
    // SAFETY: fcntl(F_GETFD) only queries whether the descriptor is open.
    if shm == Shm::Unset || unsafe { libc::fcntl(STATUS_FD, libc::F_GETFD) } < 0 {
        return; // not under a fuzzer (or run directly by afl-showmap): plain run
    }
    if shm == Shm::Unusable {
        die(b"no coverage map\n");
    }
    // SAFETY: getppid has no preconditions.
    let fuzzer = unsafe { libc::getppid() };
    let size = coverage::map_size();
    // SAFETY: looking up a symbol by a NUL-terminated name; only its presence matters.
    let preloaded = !unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"sockfuzz_reads_shm_input".as_ptr()) }.is_null();
    let input =
        if preloaded { contract::sysv::attach(env::AFL_SHM_FUZZ_ID).ok().map(|(segment, _)| segment) } else { None };
    let ask = if input.is_some() { FS_OPT_SHDMEM_FUZZ } else { 0 };
    if !write_u32(STATUS_FD, FS_OPT_ENABLED | FS_OPT_MAPSIZE | fs_opt_set_mapsize(size) | ask) {
        return; // fd 199 is not a fuzzer's pipe: plain run
    }
    if let Some(segment) = input {
        // The fuzzer answers an option request with the options it takes.
        match read_u32(CONTROL_FD) {
            Some(taken) if taken & FS_OPT_SHDMEM_FUZZ != 0 => INPUT.store(segment, Ordering::Relaxed),
            Some(_) => {}
            None => die(b"no answer to the option request\n"),
        }
    }
    if shm == Shm::TooSmall {
        die(b"coverage map too small\n"); // after the hello, which tells the fuzzer the size
    }
    die_with_parent(fuzzer);
    // SAFETY: NUL-terminated literal; getenv only reads the environment.
    serve(!unsafe { libc::getenv(env::AFL_PERSISTENT.as_ptr()) }.is_null());
}

/// Clear the coverage map: the preload calls it as a persistent run begins, so that every test
/// case's trace starts alike, in a fresh process (which ran the server's start-up since the
/// fork) as in a reused one. Entry 0 (no guard has it) is set, as AFL++'s persistent loop does:
/// a test case the server never gets to (every connection reset before it accepted one) leaves
/// a map that is not empty, which LibAFL's calibration refuses as broken instrumentation.
#[no_mangle]
pub extern "C" fn sockfuzz_clear_map() {
    let map = crate::coverage::__afl_area_ptr.load(Ordering::Relaxed);
    // SAFETY: the live map holds at least `map_size()` bytes (the fuzzer's map, attached with
    // that size, or the start-up map, which the guards were numbered within), and one at least.
    unsafe {
        std::ptr::write_bytes(map, 0, coverage::map_size().min(coverage::capacity()));
        map.write(1);
    }
}

/// The fork-server loop. Returns only in a freshly forked child.
fn serve(persistent: bool) {
    // The program may ignore or handle SIGCHLD; we need to wait for our children ourselves.
    // SAFETY: an all-zero sigaction is SIG_DFL with an empty mask.
    let default: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: an all-zero sigaction is valid storage for the old disposition.
    let mut saved: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to valid sigaction structs.
    unsafe { libc::sigaction(libc::SIGCHLD, &default, &mut saved) };
    // SAFETY: getpid has no preconditions.
    let server = unsafe { libc::getpid() };
    // A persistent child that served its test case and waits for the next one.
    let mut kept: Option<Persistent> = None;
    loop {
        let Some(was_killed) = read_u32(CONTROL_FD) else {
            // SAFETY: the fuzzer closed the control pipe: leave without running atexit handlers.
            unsafe { libc::_exit(0) };
        };
        if let Some(child) = kept.take() {
            if was_killed == 0 && child.go() {
                if !write_u32(STATUS_FD, child.pid as u32) {
                    die(b"cannot report the child pid\n");
                }
                report(child.finish(), child, &mut kept);
                continue;
            }
            child.end();
        }
        let link = if persistent { socket_pair() } else { None };
        // SAFETY: the fork server is single-threaded here (started before the program's threads).
        let child = unsafe { libc::fork() };
        if child < 0 {
            die(b"fork failed\n");
        }
        if child == 0 {
            die_with_parent(server);
            // SAFETY: closing our protocol fds, handing the child its end of the link at
            // PERSIST_FD (inherited by nothing it execs), and restoring the program's SIGCHLD
            // disposition.
            unsafe {
                libc::close(CONTROL_FD);
                libc::close(STATUS_FD);
                if let Some((ours, theirs)) = link {
                    libc::close(ours);
                    // The system call: the preload's `dup3` refuses to replace its descriptors.
                    libc::syscall(libc::SYS_dup3, theirs, PERSIST_FD, libc::O_CLOEXEC);
                    libc::close(theirs);
                }
                libc::sigaction(libc::SIGCHLD, &saved, std::ptr::null_mut());
            }
            return;
        }
        if !write_u32(STATUS_FD, child as u32) {
            die(b"cannot report the child pid\n");
        }
        match link.and_then(|(ours, theirs)| Persistent::new(child, ours, theirs)) {
            Some(persistent) => report(persistent.finish(), persistent, &mut kept),
            None => {
                if !write_u32(STATUS_FD, wait_for(child) as u32) {
                    die(b"cannot report the child status\n");
                }
            }
        }
    }
}

/// The status the fuzzer gets for a test case served by a child that goes on: "stopped by
/// SIGSTOP", AFL++'s persistent-mode answer (LibAFL then keeps the pid for the next run).
const SERVED: libc::c_int = 0x137f;

/// A persistent child, its link (`link`) and a pidfd to see it end. No signal stops it between
/// test cases: stopping and continuing a process wakes every one of its threads (AFL++'s
/// `SIGSTOP` handshake would cost a thread pool dearly).
struct Persistent {
    pid: libc::pid_t,
    link: libc::c_int,
    pidfd: libc::c_int,
}

impl Persistent {
    /// After the fork: close the child's end here; None (the link closed, so the child serves
    /// one test case) where the kernel has no pidfds.
    fn new(pid: libc::pid_t, ours: libc::c_int, theirs: libc::c_int) -> Option<Self> {
        // SAFETY: closing our copy of the child's end; pidfd_open on our own child.
        let pidfd = unsafe {
            libc::close(theirs);
            libc::syscall(libc::SYS_pidfd_open, pid, 0) as libc::c_int
        };
        if pidfd < 0 {
            // SAFETY: our end of the link, not used after this.
            unsafe { libc::close(ours) };
            return None;
        }
        Some(Persistent { pid, link: ours, pidfd })
    }

    /// Tell the child to take the next test case.
    fn go(&self) -> bool {
        // SAFETY: one byte from a local; MSG_NOSIGNAL: a child that is gone only fails this.
        unsafe { libc::send(self.link, [GO].as_ptr().cast(), 1, libc::MSG_NOSIGNAL) == 1 }
    }

    /// The end of the test case: [`SERVED`] when the child says so, else its wait status.
    fn finish(&self) -> libc::c_int {
        loop {
            let mut fds = [
                libc::pollfd { fd: self.link, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: self.pidfd, events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: two valid pollfds.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
                if interrupted() {
                    continue;
                }
                die(b"poll failed\n");
            }
            if fds[0].revents & libc::POLLIN != 0 {
                let mut byte = 0u8;
                // SAFETY: reads one byte into a local.
                if unsafe { libc::recv(self.link, (&raw mut byte).cast(), 1, libc::MSG_DONTWAIT) } == 1 && byte == DONE
                {
                    return SERVED;
                }
            }
            if fds[1].revents != 0 || fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                return wait_for(self.pid);
            }
        }
    }

    /// Kill the child if it still runs, collect it, close our descriptors.
    fn end(self) {
        // SAFETY: SIGKILL to our own child (not yet reaped, so its pid is still its own).
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        wait_for(self.pid);
        self.close();
    }

    fn close(self) {
        // SAFETY: our descriptors, not used after this.
        unsafe {
            libc::close(self.link);
            libc::close(self.pidfd);
        }
    }
}

/// A connected pair of `SOCK_SEQPACKET` sockets (ours, the child's), close-on-exec.
fn socket_pair() -> Option<(libc::c_int, libc::c_int)> {
    let mut pair = [-1; 2];
    // SAFETY: `pair` has room for the two descriptors.
    let ok =
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr()) };
    (ok == 0).then_some((pair[0], pair[1]))
}

/// Tell the fuzzer how the run ended; a child that goes on is kept for the next test case.
fn report(status: libc::c_int, child: Persistent, kept: &mut Option<Persistent>) {
    if !write_u32(STATUS_FD, status as u32) {
        die(b"cannot report the child status\n");
    }
    if status == SERVED {
        *kept = Some(child);
    } else {
        child.close();
    }
}

/// SIGKILL this process when its parent dies; exits now if `parent` is already gone.
fn die_with_parent(parent: libc::pid_t) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process; getppid has no preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
    }
}

/// Wait for the end of the run's process and return its raw wait status; before reaping it
/// (so that its pid cannot be reused yet), kill the process group it made for itself (the
/// preload's `setpgid`): whatever it forked, even when it was killed at a timeout.
fn wait_for(child: libc::pid_t) -> libc::c_int {
    // SAFETY: an all-zero siginfo_t is valid storage for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is valid storage; WNOWAIT leaves the child a zombie, so `-child` names
    // its group, or no group at all (ESRCH) if it made none.
    unsafe {
        while libc::waitid(libc::P_PID, child as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) < 0 {
            if !interrupted() {
                die(b"waitid failed\n");
            }
        }
        libc::kill(-child, libc::SIGKILL);
    }
    let mut status = 0;
    // SAFETY: status is a valid int; child is our own child.
    while unsafe { libc::waitpid(child, &mut status, 0) } < 0 {
        if !interrupted() {
            die(b"waitpid failed\n");
        }
    }
    status
}

fn write_u32(fd: libc::c_int, value: u32) -> bool {
    let bytes = value.to_ne_bytes();
    loop {
        // SAFETY: bytes is a valid 4-byte buffer.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), 4) };
        if n == 4 {
            return true;
        }
        if n >= 0 || !interrupted() {
            return false; // pipe writes of 4 bytes are atomic: short means broken
        }
    }
}

fn read_u32(fd: libc::c_int) -> Option<u32> {
    let mut bytes = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        // SAFETY: the destination is the unfilled tail of `bytes`.
        let n = unsafe { libc::read(fd, bytes[got..].as_mut_ptr().cast(), 4 - got) };
        match n {
            1.. => got += n as usize,
            0 => return None,
            _ if interrupted() => {}
            _ => return None,
        }
    }
    Some(u32::from_ne_bytes(bytes))
}

/// Whether the last failed call was interrupted by a signal (EINTR).
fn interrupted() -> bool {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() == libc::EINTR }
}

/// Print `fuzzing runtime: fork server: <message>` to stderr and `_exit(1)`.
fn die(message: &[u8]) -> ! {
    shm::warn(b"fork server: ");
    // SAFETY: writes from a valid buffer; _exit ends the process without unwinding.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(1)
    }
}
