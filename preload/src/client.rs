//! The client thread: one real loopback connection to the server's own listening socket.

use crate::log::debug;
use crate::state::*;
use crate::{descriptor_leaks, end, fds, idle, lsan, memory_leaks, persist, play, real, settle, shared, sockets};
use libc::c_int;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;

/// Called in the server's thread right after its first successful `listen(fd)`.
pub fn start(listen_fd: c_int) {
    shared::create();
    LISTEN_FD.store(listen_fd, SeqCst);
    let config = config();
    let addr = sockets::connect_addr(listen_fd);
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
        play::output_to(fds::adopt(fd));
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
    let sock = sockets::socket(addr);
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

/// At the exit of the run's process before anything accepted our connection. A server that
/// forked during the run may have gone into the background: this process stays as the daemon's
/// stand-in, the client thread goes on, and the run ends when the daemon has served the
/// connection (`settle`; the daemon is its child, this being a subreaper). When nothing accepts
/// and nothing it forked runs any more (or it forked nothing), no request was sent, and the run
/// says it could not drive the server rather than pass for a normal one.
pub extern "C" fn exited_early() {
    if !shared::is_run_process() || shared::accepted_any() {
        return;
    }
    if shared::has_forked() {
        debug!("the server may have gone into the background: following the processes it forked");
        let _waiting = idle::Waiting::enter(-1);
        // Until one accepts; or none of them has run for five looks in a row (a single look
        // was seen to miss a running daemon in about one run in a thousand).
        let mut gone = 0;
        while !shared::accepted_any() && gone < 5 {
            gone = if shared::forked_alive() { 0 } else { gone + 1 };
            // SAFETY: poll with no descriptors only sleeps (10 ms); our own, not the hook.
            unsafe { real::poll(std::ptr::null_mut(), 0, 10) };
        }
        while shared::accepted_any() {
            // SAFETY: pause has no preconditions; the client thread ends the process.
            unsafe { real::pause() };
        }
    }
    end::cannot_drive(format_args!(
        "the server exited after listening, before anything accepted the connection, so no request was sent"
    ));
}

/// Serve test cases: one, or in persistent mode one after another on new connections. After
/// each that ends normally, the leak oracles look at what it left (`memory_leaks`, then
/// `descriptor_leaks`, which may play it again).
fn run(mut sock: c_int, addr: SocketAddr) -> ! {
    lsan::hide_this_thread();
    // Kept from one test case to the next: fresh buffers would fault their pages in each time.
    let (mut input, mut reply) = (Vec::new(), vec![0u8; 64 * 1024]);
    loop {
        persist::begin();
        read_input(&mut input);
        let opened = descriptor_leaks::Open::now();
        let heap = memory_leaks::mark();
        serve(sock, addr, &input, &mut reply);
        // Before the leak check, which may open descriptors of its own for a while.
        let left = descriptor_leaks::Open::now();
        let heap_clean = memory_leaks::check(heap);
        if ACCEPTED.load(SeqCst) {
            descriptor_leaks::check(&opened, &left, || {
                persist::again();
                memory_leaks::unchecked();
                serve(sockets::socket(addr), addr, &input, &mut reply);
            });
        }
        if !heap_clean || !persist::next() {
            end::exit(0)
        }
        sock = sockets::socket(addr);
    }
}

/// One test case from our socket `sock`, until the server waits again after it (`settle`);
/// returns on a normal end.
fn serve(sock: c_int, addr: SocketAddr, input: &[u8], reply: &mut [u8]) {
    let expects_accept = play::play(sock, addr, input, reply);
    if expects_accept && !shared::accepted_any() {
        // The listener went away (the server is exiting, or closed it) without accepting:
        // let the server's own exit, if it comes, be the run's.
        std::thread::sleep(std::time::Duration::from_secs(1));
        end::cannot_drive(format_args!(
            "the connection ended, but the server never accepted it (it closed its listening socket, \
             or a process it started before listening accepted it, which sockfuzz cannot follow)"
        ));
    }
    settle::end_run();
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
