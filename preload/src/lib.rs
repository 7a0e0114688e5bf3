//! sockfuzz: an `LD_PRELOAD` library that drives an unmodified TCP server with one input.
//!
//! When the server first calls `listen()` on a TCP socket, a client thread inside the server
//! process opens a real loopback connection to that socket, writes the whole input (from the
//! fuzzer's shared memory, `SOCKFUZZ_INPUT_FILE`, or stdin),
//! half-closes, and reads the reply to EOF. An input that is a comux file holds several
//! connections' chunks, with a schedule and flags (`contract::comux`): the client thread plays
//! them all, in one poll loop (`play`). No socket call of the server is emulated, so every
//! socket option and I/O style works. The run then ends (see `settle`):
//!
//! | exit                      | meaning                                                        |
//! |---------------------------|----------------------------------------------------------------|
//! | status 0                  | the server closed the connection and went idle                 |
//! | a signal                  | the server (or the child it forked for the connection) crashed |
//! | status [`EXIT_EOF_SPIN`]  | the server kept reading end-of-file without closing: a hang    |
//! | status [`EXIT_SETUP`]     | sockfuzz could not drive the server (message on stderr)        |
//! | status [`EXIT_IDLE`]      | the server left the connection open and waits (`idle`)         |
//! | status [`EXIT_STUCK`]     | ... and nothing could ever wake it: no timer, no timeout, no child |
//! | signal [`SIG_TRAVERSAL`]  | the server opened a path outside its web root (`paths`)        |
//! | signal [`SIG_FD_LEAK`]    | each play of the test case left descriptors open (`descriptor_leaks`) |
//! | signal [`SIG_MEM_LEAK`]   | LeakSanitizer found memory the test case leaked (`memory_leaks`) |
//! | status [`EXIT_UNSERVED`]  | as [`EXIT_SETUP`], in a process reused for many test cases     |
//! | status [`EXIT_SPIN`]      | a server thread runs without a call, a fault or new coverage (`spin`) |
//! | `DONE` on fd 197          | a normal end in persistent mode: the next test case follows   |
//!
//! Environment: `SOCKFUZZ_DEBUG=1` prints `[sockfuzz]` log lines; `SOCKFUZZ_OUTPUT=0` does not
//! copy the reply to stdout; `SOCKFUZZ_STATUS_FD=N` gets `L`, the port (2 bytes, big-endian) and the
//! listening process's pid (4 bytes, big-endian) once the server listens, then the reply (used by `fuzzer run` to tell "never listened" from "slow", and by
//! the start-up check to see that the server took the port it was given).
//!
//! `SOCKFUZZ_ERROR_FILE=/path` gets the message of an [`EXIT_SETUP`] end too (a fuzzer's runs
//! have no stderr). `SOCKFUZZ_MEM_LIMIT_MB=MB` caps the server's address space (`limits`).
//!
//! `SOCKFUZZ_IDLE=MS` turns the idle verdict on, after MS milliseconds of idleness (off by
//! default: afl-fuzz would take its exit status for a normal end); `SOCKFUZZ_CONTROL_SHM=ID` is the fuzzer's control page, whose
//! byte 0 set makes a run patient (no idle or spin verdict) while it re-runs a hang candidate, byte 1
//! set turns persistent runs off, and bytes 4..8 give the spin verdict's bound (`spin`).
//! `SOCKFUZZ_EOF_SPIN=0` turns the EOF-spin verdict off (triage attaches gdb to the spinning server).
//!
//! `SOCKFUZZ_PERSISTENT=N` serves up to N test cases per process, each on a new connection (`persist`).
//!
//! `SOCKFUZZ_NETNS=1` runs the server in a network namespace of its own, loopback only, where
//! `getaddrinfo` with `AI_ADDRCONFIG` still answers as on the host (`netns`).
//!
//! Path traversal: `SOCKFUZZ_ROOT=/abs/dir` (the server's web root) turns on the check of every
//! path the server opens or looks up (unset or empty: off). `SOCKFUZZ_FINDING_FILE=/path` gets
//! one line `PATH_AS_OPENED\tRESOLVED_PATH\n` on a finding (`\\`, `\t`, `\n` and `\xNN` escape
//! the bytes that would break a line of UTF-8; `finding`).
//!
//! Leaks, on unless `SOCKFUZZ_LEAKS=0`: descriptors a test case leaves open each time it is
//! played (`descriptor_leaks`; the finding file gets what they are, one a line), and in an ASan
//! build memory LeakSanitizer finds leaked (`memory_leaks`; it needs `detect_leaks=1`, and
//! `leak_check_at_exit=0` keeps ASan's own check at exit from ending the server's children).
//!
//! Response states: with `SOCKFUZZ_STATES_SHM=ID` (the fuzzer's map, `contract::states`), the
//! status codes of the server's responses are marked there as transitions (`replies`).
//!
//! CmpLog: with `SOCKFUZZ_CMPLOG_SHM_ID` set (only in the fuzzer's tracing fork server), the
//! string and memory comparisons of the server are logged for input-to-state (`compare`).
//!
//! Modules, in layers: each imports only from the layers below it, never back up.
//!
//! | layer | modules | what they are |
//! |---|---|---|
//! | hook table | `hooks` | the exported libc functions, each a dispatch to a policy below |
//! | entry policies | `trigger`, `connection` | the first `listen`; our accepted connection |
//! | the client thread | `client`, `play` | reads each test case; plays its connections and watches the run |
//! | persistent runs | `persist` | the next test case in the same process |
//! | policies | `settle`, `spin`, `children`, `threads`, `paths`, `descriptor_leaks`, `memory_leaks` | ending a run; a thread that spins; forks and reaping; threads alive; path traversal; leaks |
//! | verdict machinery | `idle`, `end` | who waits and the idle verdict; how the process ends |
//! | low layers | `sockets`, `shared`, `fds`, `finding`, `lsan`, `log`, `limits`, `netns`, `compare`, `replies` | the run's page across processes; our descriptors; the finding file; LeakSanitizer; ...; the responses' status codes |
//! | bottom | `state`, `real` | every process-wide static and the configuration; the real libc functions |
//!
//! [`EXIT_EOF_SPIN`]: contract::verdicts::EXIT_EOF_SPIN
//! [`EXIT_SETUP`]: contract::verdicts::EXIT_SETUP
//! [`EXIT_IDLE`]: contract::verdicts::EXIT_IDLE
//! [`EXIT_STUCK`]: contract::verdicts::EXIT_STUCK
//! [`SIG_TRAVERSAL`]: contract::verdicts::SIG_TRAVERSAL
//! [`SIG_FD_LEAK`]: contract::verdicts::SIG_FD_LEAK
//! [`SIG_MEM_LEAK`]: contract::verdicts::SIG_MEM_LEAK
//! [`EXIT_UNSERVED`]: contract::verdicts::EXIT_UNSERVED
//! [`EXIT_SPIN`]: contract::verdicts::EXIT_SPIN

mod children;
mod client;
mod compare;
mod connection;
mod descriptor_leaks;
mod end;
mod fds;
mod finding;
mod hooks;
mod idle;
mod limits;
mod log;
mod lsan;
mod memory_leaks;
mod netns;
mod page;
mod paths;
mod persist;
mod play;
mod real;
mod replies;
mod settle;
mod shared;
mod sockets;
mod spin;
mod state;
mod threads;
mod trigger;

/// Start-up, before `main`: protect the descriptors the fuzzer handed down (`fds`), and enter a
/// network namespace of the server's own if asked (`netns`).
extern "C" fn init() {
    fds::keep_inherited();
    lsan::hide_start_up();
    netns::enter();
    limits::apply();
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;
