//! How a run failed, read from what it left: the outcome, ASan's report (LeakSanitizer's for a
//! memory leak), gdb's backtrace of a crash or stacks of a hang, the request of a path
//! traversal, the descriptors a leak kept open. Pure functions of their text (but for the
//! symbolizer they may call), so that they can be tested on samples.

use crate::explain::{DESCRIPTOR_LEAK_NAME, MEMORY_LEAK_NAME};
use crate::report::symbolize::{self, Frame, Symbolizer};
use crate::runner::preload;
use crate::runner::{Finished, Outcome};
use std::path::Path;

/// How a run failed: what and where.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Signature {
    pub kind: String,
    /// Frames in the server's sources, innermost first; for a traversal, how it got out; for a
    /// descriptor leak, what leaked.
    pub frames: Vec<Frame>,
    /// The function outside the server's sources that its innermost frame was calling when it
    /// failed (`strlen`, `atoi`), if it was.
    pub callee: Option<String>,
}

impl Frame {
    /// `function (file:line)`, the file relative to `base` when under it; the function alone
    /// when the line is unknown (or the frame says how a traversal got out).
    pub fn show(&self, base: &Path) -> String {
        if self.line == 0 {
            return self.function.clone();
        }
        let file = Path::new(&self.file);
        let file = file.strip_prefix(base).unwrap_or(file);
        format!("{} ({}:{})", self.function, file.display(), self.line)
    }
}

impl Signature {
    pub fn new(kind: &str) -> Self {
        Signature { kind: kind.into(), frames: Vec::new(), callee: None }
    }

    /// A crash with only its signal to go by (a build without ASan), which gdb can place.
    pub fn is_signal(&self) -> bool {
        self.kind.starts_with("SIG") || self.kind.starts_with("signal ")
    }

    pub fn is_hang(&self) -> bool {
        [HANG, LEFT_OPEN, BLOCKED].contains(&self.kind.as_str())
    }

    /// What groups files: the kind and the functions of the two innermost frames. Not the line:
    /// one unchecked pointer is often dereferenced on several lines of one function. A wild
    /// pointer (SEGV) also by the library function it was passed to: `atoi(NULL)` and
    /// `strlen(NULL)` in one function are two unchecked values. Out-of-bounds accesses are one
    /// kind whatever ASan calls them (`heap-buffer-overflow`, `unknown-crash` for a huge
    /// length): one wrong length overruns first in a `memset` or at an index, as it happens. A
    /// memory leak by the function that allocated it alone: one forgotten `free` whoever called.
    pub fn key(&self) -> (String, Vec<String>, Option<String>) {
        let wild = self.kind == "SEGV" || self.is_signal();
        let kind = if OUT_OF_BOUNDS.contains(&self.kind.as_str()) { "out-of-bounds" } else { &self.kind };
        let frames = if self.kind == MEMORY_LEAK_NAME { 1 } else { 2 };
        let functions = self.frames.iter().take(frames).map(|f| f.function.clone()).collect();
        (kind.to_string(), functions, self.callee.clone().filter(|_| wild))
    }
}

/// ASan's names for an access past the end (or before the start) of a block.
const OUT_OF_BOUNDS: [&str; 7] = [
    "heap-buffer-overflow",
    "stack-buffer-overflow",
    "stack-buffer-underflow",
    "global-buffer-overflow",
    "dynamic-stack-buffer-overflow",
    "container-overflow",
    "unknown-crash",
];

/// Frames of the call stack kept per signature.
const FRAMES: usize = 3;

const HANG: &str = "hang";
const LEFT_OPEN: &str = "left open";
const BLOCKED: &str = "blocked client";

/// How a finished run failed, if it did; frames are the server's when in a file under `sources`,
/// and `root` is the web root it was given.
pub fn of_run(
    finished: &Finished,
    input: &[u8],
    sources: &Path,
    root: &Path,
    symbolizer: &Symbolizer,
) -> Option<Signature> {
    let plain = |kind: &str| Some(Signature::new(kind));
    match &finished.outcome {
        Outcome::Ok | Outcome::Exited(_) => None,
        Outcome::Hang => plain(HANG),
        Outcome::LeftOpen => plain(LEFT_OPEN),
        Outcome::Blocked => plain(BLOCKED),
        Outcome::Traversal(_) => {
            let how = traversal_form(input);
            Some(Signature {
                frames: vec![Frame { function: how.into(), file: String::new(), line: 0 }],
                ..Signature::new("path traversal")
            })
        }
        Outcome::DescriptorLeak(what) => Some(Signature {
            frames: vec![Frame { function: format!("of {}", leaked(what, root)), file: String::new(), line: 0 }],
            ..Signature::new(DESCRIPTOR_LEAK_NAME)
        }),
        Outcome::MemoryLeak(_) => {
            Some(leak_report(&finished.stderr, sources, symbolizer).unwrap_or_else(|| Signature::new(MEMORY_LEAK_NAME)))
        }
        Outcome::Crash(sig) => {
            let name = preload::short_signal_name(*sig).map_or_else(|| format!("signal {sig}"), str::to_string);
            asan_report(&finished.stderr, sources, symbolizer).or_else(|| plain(&name))
        }
    }
}

/// The signal and the place of a crash gdb saw (`bt` after the signal), if it saw one in the
/// server's sources.
pub fn gdb_crash(backtrace: &str, sources: &Path) -> Option<Signature> {
    // "Thread 2 "server" received signal SIGSEGV, Segmentation fault."
    let signal = backtrace.split("received signal ").nth(1)?.split([',', ' ', '.']).next()?.to_string();
    let (frames, callee) = crash_place(backtrace, sources)?;
    Some(Signature { kind: signal, frames, callee })
}

/// Where a crash happened, from gdb's backtrace of the crashing thread (`bt` after the signal):
/// the frames in the server's sources, and the library function it was in.
fn crash_place(backtrace: &str, sources: &Path) -> Option<(Vec<Frame>, Option<String>)> {
    let thread = crate::gdb::stacks::parse_backtrace(backtrace).into_iter().next()?;
    let (frames, callee) = server_frames(thread, sources);
    (!frames.is_empty()).then_some((frames, callee))
}

/// The frames of one gdb stack in the server's sources (innermost first, at most [`FRAMES`]),
/// and the library function the innermost of them called.
fn server_frames(thread: Vec<crate::gdb::stacks::GdbFrame>, sources: &Path) -> (Vec<Frame>, Option<String>) {
    let stack: Vec<Frame> = thread
        .into_iter()
        .map(|f| Frame { function: f.function, file: f.file.unwrap_or_default(), line: f.line.unwrap_or(0) })
        .collect();
    in_server(&stack, sources)
}

/// Where a hung server waits or spins, from gdb's stacks of its processes: the frames in the
/// server's sources of the thread most likely ours (one reading or running its own code
/// before one parked in `accept`, `epoll_wait` or a condition variable: an idle thread of a
/// pool or the acceptor), and the library function it is in.
pub fn hang_place(stacks: &str, sources: &Path) -> (Vec<Frame>, Option<String>) {
    const IDLE: [&str; 12] = [
        "accept",
        "accept4",
        "epoll_wait",
        "epoll_pwait",
        "pthread_cond_wait",
        "pthread_cond_timedwait",
        "pause",
        "sigsuspend",
        "sigwait",
        "nanosleep",
        "clock_nanosleep",
        "futex_wait",
    ];
    let threads = crate::gdb::stacks::parse_backtrace(stacks).into_iter().filter_map(|thread| {
        let (frames, callee) = server_frames(thread, sources);
        let idle = callee.as_deref().is_some_and(|c| IDLE.iter().any(|i| c.contains(i)));
        (!frames.is_empty()).then_some((idle, frames, callee))
    });
    threads.min_by_key(|(idle, ..)| *idle).map_or((Vec::new(), None), |(_, frames, callee)| (frames, callee))
}

/// What a descriptor leak kept open, as its group says it: the preload's kinds (`; ` between
/// them), with the files of the web root as one, since one missing `close` leaks whichever
/// file a request names.
fn leaked(what: &str, root: &Path) -> String {
    let mut kinds: Vec<String> = Vec::new();
    for kind in what.split("; ") {
        let served = ["file ", "directory "].iter().find_map(|k| kind.strip_prefix(k).map(|path| (k, path)));
        let kind = match served {
            Some((k, path)) if Path::new(path).starts_with(root) => format!("a {}in the web root", k),
            _ => kind.to_string(),
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds.join(" and ")
}

/// How a path-traversal request got out of the web root, from the request's bytes: a literal
/// `..` first, then encoded dots or slashes; in the path of the first request line's target if
/// it shows either (a query or a header may hold dots of their own), else anywhere (a later
/// request of a pipeline).
fn traversal_form(input: &[u8]) -> &'static str {
    let line = input.split(|&b| b == b'\n').next().unwrap_or(input);
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or(line);
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    form(path).or_else(|| form(input)).unwrap_or("through a symlink")
}

fn form(bytes: &[u8]) -> Option<&'static str> {
    let lower = bytes.to_ascii_lowercase();
    let has = |needle: &[u8]| lower.windows(needle.len()).any(|w| w == needle);
    if has(b"/..") || has(b"../") {
        Some("through `..`")
    } else if has(b"%2e") || has(b"%2f") || has(b"%5c") {
        Some("through percent-encoded dots or slashes")
    } else {
        None
    }
}

/// The error kind, the frames in the server's own sources (under `sources`) and the function
/// they called of an AddressSanitizer report, symbolized or not.
fn asan_report(stderr: &[u8], sources: &Path, symbolizer: &Symbolizer) -> Option<Signature> {
    let text = String::from_utf8_lossy(stderr);
    let start = text.find("ERROR: AddressSanitizer: ")? + "ERROR: AddressSanitizer: ".len();
    let mut words = text[start..].split_whitespace();
    let first = words.next()?.trim_end_matches(':');
    // "attempting double-free on 0x...", "attempting free on address which was not malloc()-ed"
    let kind = if first == "attempting" { words.next()?.trim_end_matches(':') } else { first };
    // The first stack only: the others say where the memory was allocated or freed.
    let (frames, callee) = in_server(&first_stack(&text[start..], symbolizer), sources);
    Some(Signature { kind: kind.to_string(), frames, callee })
}

/// A memory leak's place, from LeakSanitizer's report: the frames in the server's sources of
/// the allocation stack of its first direct leak (else of its first leak: a cycle of blocks is
/// all indirect), and the allocator they called (`malloc`, `strdup`).
fn leak_report(stderr: &[u8], sources: &Path, symbolizer: &Symbolizer) -> Option<Signature> {
    let text = String::from_utf8_lossy(stderr);
    let report = &text[text.find("ERROR: LeakSanitizer:")?..];
    let start = report.find("Direct leak of").or_else(|| report.find("Indirect leak of"))?;
    let (frames, callee) = in_server(&first_stack(&report[start..], symbolizer), sources);
    Some(Signature { kind: MEMORY_LEAK_NAME.to_string(), frames, callee })
}

/// The first call stack (`#N ...` lines) in `text`, symbolized if it is not.
fn first_stack(text: &str, symbolizer: &Symbolizer) -> Vec<Frame> {
    let mut stack = Vec::new();
    let mut in_stack = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            in_stack = true;
            match symbolize::module_offset(line) {
                Some((module, offset)) => stack.extend(symbolizer.frames(module, offset)),
                None => stack.extend(parse_frame(line)),
            }
        } else if in_stack {
            break;
        }
    }
    stack
}

/// The frames of a stack (innermost first) in the server's sources, at most [`FRAMES`], and
/// the library function the innermost of them called, if it was in one.
fn in_server(stack: &[Frame], sources: &Path) -> (Vec<Frame>, Option<String>) {
    let ours = |f: &Frame| is_server_source(&f.file, sources);
    let frames: Vec<Frame> = stack.iter().filter(|f| ours(f)).take(FRAMES).cloned().collect();
    let callee = stack
        .iter()
        .take_while(|f| !ours(f))
        .filter(|f| !instrumentation(&f.function))
        .last()
        .map(|f| library_function(&f.function));
    let callee = callee.filter(|_| !frames.is_empty());
    (frames, callee)
}

/// A function of the coverage instrumentation (ours, or AFL++'s): the server's own code calls
/// it at every edge or comparison, so a stack caught there is in the server's code.
fn instrumentation(function: &str) -> bool {
    ["__sanitizer_cov", "__afl_", "__cmplog", "runtime::"].iter().any(|p| function.starts_with(p))
}

/// A library function as the server called it: `strlen` for ASan's `__interceptor_strlen`,
/// `memcpy` for `__asan_memcpy`.
fn library_function(name: &str) -> String {
    let mut name = name;
    // `__GI___libc_read`, `__interceptor_strlen`, `__asan_memcpy`
    while let Some(rest) = ["_", "GI_", "libc_", "interceptor_", "asan_"].iter().find_map(|p| name.strip_prefix(p)) {
        name = rest;
    }
    name.to_string()
}

/// `#3 0x55d0c1 in parse_range /src/http.c:120:9` (a symbolized report).
fn parse_frame(line: &str) -> Option<Frame> {
    let rest = &line[line.find(" in ")? + 4..];
    let (function, location) = rest.rsplit_once(' ')?;
    let mut parts = location.split(':');
    let file = parts.next()?.to_string();
    let line = parts.next()?.parse().ok()?;
    Some(Frame { function: function.trim().to_string(), file, line })
}

/// A frame in the server's code: a C or C++ file that is there, in the folder it was built in
/// or elsewhere outside the system's (libc's sources are named without being there).
fn is_server_source(file: &str, sources: &Path) -> bool {
    let source = [".c", ".h", ".cc", ".cpp", ".cxx", ".hpp"].iter().any(|e| file.ends_with(e));
    let path = sources.join(file);
    source && !file.contains("sanitizer") && path.is_file() && (path.starts_with(sources) || !path.starts_with("/usr/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "=================================================================
==12==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000011 at pc 0x1 bp 0x2 sp 0x3
READ of size 1 at 0x602000000011 thread T1
    #0 0x7f1 in __interceptor_strlen ../../../../src/libsanitizer/sanitizer_common/sanitizer_common_interceptors.inc:387
    #1 0x55d in parse_range /tmp/out/build/http.c:120:9
    #2 0x55e in handle /tmp/out/build/http.c:300
    #3 0x55f in worker /tmp/out/build/server.c:40
    #4 0x560 in serve /tmp/out/build/server.c:60
    #5 0x7f2 in start_thread (/lib/x86_64-linux-gnu/libc.so.6+0x8e)

0x602000000011 is located 0 bytes to the right of 1-byte region
allocated by thread T1 here:
    #0 0x7f3 in malloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:69
    #1 0x561 in read_request /tmp/out/build/http.c:50
";

    #[test]
    fn an_asan_report_gives_the_kind_and_the_frames_in_the_servers_sources() {
        let scratch = tempfile::tempdir().unwrap();
        let sources = scratch.path().to_path_buf();
        std::fs::create_dir_all(&sources).unwrap();
        for f in ["http.c", "server.c", "api.c"] {
            std::fs::write(sources.join(f), "").unwrap();
        }
        let report = REPORT.replace("/tmp/out/build", &sources.display().to_string());
        let symbolizer = Symbolizer::default();
        let s = asan_report(report.as_bytes(), &sources, &symbolizer).unwrap();
        assert_eq!((s.kind.as_str(), s.callee.as_deref()), ("heap-buffer-overflow", Some("strlen")));
        let shown: Vec<String> = s.frames.iter().map(|f| f.show(&sources)).collect();
        assert_eq!(shown, ["parse_range (http.c:120)", "handle (http.c:300)", "worker (server.c:40)"]);
        let double_free = format!(
            "==1==ERROR: AddressSanitizer: attempting double-free on 0x6 in thread T0:\n    #0 0x1 in free x.cpp:1\n    #1 0x2 in strtol_l stdlib/strtol_l.c:291\n    #2 0x2 in logout {}/api.c:7\n",
            sources.display()
        );
        let s = asan_report(double_free.as_bytes(), &sources, &symbolizer).unwrap();
        assert_eq!((s.kind.as_str(), s.frames[0].function.as_str()), ("double-free", "logout"));
        assert!(asan_report(b"Segmentation fault", &sources, &symbolizer).is_none());
    }

    /// A report as LeakSanitizer prints it with `symbolize=1` (triage reads it unsymbolized).
    const LEAK_REPORT: &str = "[run] ...
=================================================================
==26021==ERROR: LeakSanitizer: detected memory leaks

Indirect leak of 64 byte(s) in 1 object(s) allocated from:
    #0 0x55 in __interceptor_malloc /src/compiler-rt/lib/asan/asan_malloc_linux.cpp:69:3
    #1 0x56 in parse_headers /tmp/out/build/http.c:80:9

Direct leak of 5 byte(s) in 1 object(s) allocated from:
    #0 0x55 in __interceptor_malloc /src/compiler-rt/lib/asan/asan_malloc_linux.cpp:69:3
    #1 0x57 in __interceptor_strndup /src/compiler-rt/lib/sanitizer_common/sanitizer_common_interceptors.inc:449:3
    #2 0x58 in note_cookie /tmp/out/build/server.c:52:18
    #3 0x59 in handle /tmp/out/build/server.c:110:5

SUMMARY: AddressSanitizer: 69 byte(s) leaked in 2 allocation(s).
";

    #[test]
    fn a_memory_leak_is_placed_by_its_first_direct_leak_and_grouped_by_the_allocating_function() {
        let scratch = tempfile::tempdir().unwrap();
        let sources = scratch.path().to_path_buf();
        for f in ["http.c", "server.c"] {
            std::fs::write(sources.join(f), "").unwrap();
        }
        let report = LEAK_REPORT.replace("/tmp/out/build", &sources.display().to_string());
        let symbolizer = Symbolizer::default();
        let s = leak_report(report.as_bytes(), &sources, &symbolizer).unwrap();
        assert_eq!((s.kind.as_str(), s.callee.as_deref()), ("memory leak", Some("strndup")));
        let shown: Vec<String> = s.frames.iter().map(|f| f.show(&sources)).collect();
        assert_eq!(shown, ["note_cookie (server.c:52)", "handle (server.c:110)"]);
        // The same allocation reached from another caller is the same bug.
        let elsewhere = report.replace("in handle ", "in serve_other ");
        assert_eq!(leak_report(elsewhere.as_bytes(), &sources, &symbolizer).unwrap().key(), s.key());
        // A cycle of blocks (indirect leaks only) is placed too.
        let start = report.find("Direct leak").unwrap();
        let indirect = &report[..start];
        let s = leak_report(indirect.as_bytes(), &sources, &symbolizer).unwrap();
        assert_eq!(s.frames[0].function, "parse_headers");
        assert!(leak_report(b"ERROR: AddressSanitizer: SEGV", &sources, &symbolizer).is_none());
    }

    #[test]
    fn a_stack_caught_in_the_coverage_instrumentation_is_in_the_servers_code() {
        let scratch = tempfile::tempdir().unwrap();
        let sources = scratch.path();
        std::fs::write(sources.join("static.c"), "").unwrap();
        let frame = |function: &str, file: &str| Frame { function: function.into(), file: file.into(), line: 85 };
        let server = frame("parse_range", &sources.join("static.c").display().to_string());
        for hook in ["runtime::cmplog::switch::h96ec4545a5999fa4", "__sanitizer_cov_trace_switch", "__cmplog_ins_hook4"]
        {
            let (frames, callee) = in_server(&[frame(hook, "/rt/x.rs"), server.clone()], sources);
            assert_eq!((frames[0].function.as_str(), callee), ("parse_range", None), "{hook}");
        }
        let (_, callee) = in_server(&[frame("__interceptor_strlen", "x.inc"), server], sources);
        assert_eq!(callee.as_deref(), Some("strlen"));
    }

    #[test]
    fn descriptor_leaks_are_told_apart_by_what_leaked() {
        let finished = |what: &str| Finished {
            outcome: Outcome::DescriptorLeak(what.into()),
            port: 0,
            reply: Vec::new(),
            stderr: Vec::new(),
            stacks: String::new(),
        };
        let (sources, symbolizer) = (Path::new("/nonexistent"), Symbolizer::default());
        let of = |what: &str| of_run(&finished(what), b"", sources, Path::new("/r"), &symbolizer).unwrap();
        let socket = of("a client's connection (TCP socket)");
        assert_eq!(socket.kind, "descriptor leak");
        assert_eq!(socket.frames[0].show(sources), "of a client's connection (TCP socket)");
        assert_eq!(crate::bugs::place(&socket.frames[0].show(sources)), " of a client's connection (TCP socket)");
        // Files the server serves are one bug, whichever a request names; others by their path.
        let both = of("file /r/a.html; a pipe; file /r/sub/b.html");
        assert_eq!(both.frames[0].function, "of a file in the web root and a pipe");
        assert_eq!(of("file /r/a.html").key(), of("file /r/sub/b.html").key());
        assert_eq!(of("directory /r/sub").frames[0].function, "of a directory in the web root");
        assert_eq!(of("file /rr/log").frames[0].function, "of file /rr/log");
        assert_ne!(of("file /var/log/a").key(), of("file /var/log/b").key());
        assert_ne!(of("file /r/a.html").key(), socket.key());
    }

    #[test]
    fn traversals_are_told_apart_by_how_the_path_got_out() {
        assert_eq!(traversal_form(b"GET /../../etc/passwd HTTP/1.0\r\n\r\n"), "through `..`");
        assert_eq!(traversal_form(b"GET /%2E%2e/secret HTTP/1.0\r\n\r\n"), "through percent-encoded dots or slashes");
        assert_eq!(traversal_form(b"GET /link/passwd HTTP/1.0\r\n\r\n"), "through a symlink");
        assert_eq!(traversal_form(b"GET /a%20b/../../x HTTP/1.0\r\n\r\n"), "through `..`");
        let header = b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.0\r\nReferer: ../x\r\n\r\n";
        assert_eq!(traversal_form(header), "through percent-encoded dots or slashes");
        assert_eq!(traversal_form(b"GET / HTTP/1.1\r\n\r\nGET /../x HTTP/1.0\r\n\r\n"), "through `..`");
        let query = b"GET /%2e%2e/etc/passwd?/../ HTTP/1.0\r\n\r\n";
        assert_eq!(traversal_form(query), "through percent-encoded dots or slashes");
    }
}
