//! How a run under the preload ends when it is not a plain exit: the exit statuses and the
//! signals the preload ends a run with.

/// Exit status of a run in which the server read EOF over and over without closing: a hang.
pub const EXIT_EOF_SPIN: i32 = 86;
/// Exit status when sockfuzz itself could not drive the server (e.g. connect failed).
pub const EXIT_SETUP: i32 = 87;
/// Exit status of a run ended by the idle verdict: every server thread waits for something
/// that cannot come while our connection is still open (`idle`).
pub const EXIT_IDLE: i32 = 88;
/// Exit status of an idle verdict where nothing could ever wake the server: every thread waits
/// without a timeout, no timer was armed and no child process runs (`idle::stuck`). A hang for
/// certain, where [`EXIT_IDLE`] may be a server that closes idle connections after a while.
pub const EXIT_STUCK: i32 = 89;
/// The signal a run dies by when the server opened or looked up a path outside its web root
/// (`SOCKFUZZ_ROOT`): `..` climbed out of it, a symlink led out, or a `realpath` result that
/// left it was used. Not a crash signal, so a finding is told apart from a crash.
pub const SIG_TRAVERSAL: i32 = libc::SIGUSR2;
/// Exit status of a test case that could not be driven in a process reused for it (persistent
/// mode): the fuzzer re-runs it in a fresh process, where the reason shows if it is real.
pub const EXIT_UNSERVED: i32 = 90;
/// Exit status when one slow client blocks the others: a connection kept open mid-request (no
/// reply yet) and another's whole request still unread by the server (not accepted, or unread
/// in its socket), while every server thread sleeps (`play`). A hang candidate, re-run patiently.
pub const EXIT_BLOCKED: i32 = 91;
/// Exit status when a server thread spins: it ran on the CPU for the fuzzer's spin bound without
/// blocking, reading, writing, faulting in a page or reaching new code (the preload's `spin`).
/// A hang candidate that the fuzzer confirms by the same rule once more.
pub const EXIT_SPIN: i32 = 92;
/// The signal a run dies by when the server kept descriptors open that the test case made it
/// open (a file, a client's connection), each time the test case was played again in the same
/// process (`SOCKFUZZ_FINDING_FILE` says what they are). Not a crash signal, and none a server
/// uses (`SIGSTKFLT` is unused on Linux), so the finding is told apart from a crash.
pub const SIG_FD_LEAK: i32 = libc::SIGSTKFLT;
/// The signal a run dies by when LeakSanitizer (an ASan build) found heap memory that nothing
/// points to any more, allocated since the server listened (its report is on the server's
/// stderr). `SIGPWR`: no default meaning for a server, and not a crash signal.
pub const SIG_MEM_LEAK: i32 = libc::SIGPWR;
