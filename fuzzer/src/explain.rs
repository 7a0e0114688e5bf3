//! What a finding means and how to fix it, in plain words, where the words that name it are not
//! enough: the leaks the preload finds and deaths by `SIGPIPE`. The summary, the triage report
//! and `fuzzer run` say the same.

/// The plain names of the two leaks, as the summary, the screen and triage name them.
pub const DESCRIPTOR_LEAK_NAME: &str = "descriptor leak";
pub const MEMORY_LEAK_NAME: &str = "memory leak";
/// Triage's name of a crash by `SIGPIPE`.
pub const SIGPIPE_NAME: &str = "SIGPIPE";

/// A descriptor leak (`descriptor_leaks` in the preload).
pub const DESCRIPTOR_LEAK: &str = "A descriptor leak: every time the same request was sent, the server kept one more \
     descriptor open after it (a file, a client's connection) that it never closes. A server that runs for long \
     runs out of descriptors (`accept` and `open` fail with EMFILE) and stops serving. Fix: close every descriptor on \
     every path, the error paths too: the client's socket also when the client disconnects early (`recv` returns 0 \
     or fails with ECONNRESET) or sends garbage, a file also when reading or sending it fails.";

/// A memory leak (`memory_leaks` in the preload, LeakSanitizer in an ASan build).
pub const MEMORY_LEAK: &str = "A memory leak: LeakSanitizer (the ASan build) found memory that the server allocated \
     for the request and that nothing points to any more, so it can never be freed. Each such request makes the \
     server bigger until it runs out of memory. Fix: free what is allocated per request (a copy of a header, a \
     buffer, a parsed path) before the request ends, on every path, the error paths too; `fuzzer triage` names the \
     function that allocated it.";

/// A death by `SIGPIPE`.
pub const SIGPIPE: &str = "SIGPIPE: the server wrote to a connection the client had already closed, and the \
     signal's default action killed it (any client that disconnects early can do this). Fix: ignore the signal \
     once at start-up with `signal(SIGPIPE, SIG_IGN);` (then `send` fails with EPIPE, which the server must handle \
     by closing the connection), or send with `send(fd, buf, len, MSG_NOSIGNAL)`.";

/// What a crash by signal `sig` means, when it needs saying.
pub fn signal(sig: i32) -> Option<&'static str> {
    (sig == libc::SIGPIPE).then_some(SIGPIPE)
}

/// What a bug of triage's kind `kind` means, when it needs saying.
pub fn kind(kind: &str) -> Option<&'static str> {
    match kind {
        DESCRIPTOR_LEAK_NAME => Some(DESCRIPTOR_LEAK),
        MEMORY_LEAK_NAME => Some(MEMORY_LEAK),
        SIGPIPE_NAME => Some(SIGPIPE),
        _ => None,
    }
}
