//! gdb attached to a running server: the stacks of a hung server's threads, and the frames of
//! gdb's backtraces (a crash's `bt` too), which triage groups by.

use crate::runner::pipes::collect;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Time gdb may take to attach to a process, print its stacks and detach.
const ATTACH_LIMIT: Duration = Duration::from_secs(5);

/// One frame of a backtrace: the function (`??` when gdb does not know it), and the source
/// file and line when gdb shows ` at FILE:LINE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdbFrame {
    pub function: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// Whether `gdb` is an executable on PATH.
pub fn available() -> bool {
    on_path(std::env::var_os("PATH").as_deref())
}

pub fn on_path(path: Option<&OsStr>) -> bool {
    path.is_some_and(|path| {
        std::env::split_paths(path).any(|dir| {
            std::fs::metadata(dir.join("gdb")).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The stacks of every thread of the running process `pid` (a hung server, our descendant),
/// from gdb attached in batch mode (`thread apply all bt`), which detaches when done. The
/// process is left as it was (the caller kills it). None if gdb is missing, could not attach
/// (ptrace not permitted), or took longer than a few seconds.
pub fn attach_stacks(pid: i32) -> Option<String> {
    if !available() {
        return None;
    }
    let mut gdb = Command::new("gdb")
        .args(["-nx", "-batch"])
        .args(QUIET_SETTINGS.iter().flat_map(|s| ["-iex", s]))
        .args(["-p", &pid.to_string(), "-ex", "thread apply all bt"])
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?;
    let text = collect(gdb.stdout.take()?);
    let deadline = Instant::now() + ATTACH_LIMIT;
    let finished = loop {
        match gdb.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                // The process group of the gdb we started, not yet reaped.
                let _ = killpg(Pid::from_raw(gdb.id() as i32), Signal::SIGKILL);
                let _ = gdb.wait();
                // A tracer that dies before it took the attach's SIGSTOP leaves the process
                // stopped (`pid` is the caller's process, which they asked us to look at).
                let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
                break false;
            }
        }
    };
    let text = String::from_utf8_lossy(&text.join().unwrap_or_default()).into_owned();
    (finished && text.lines().any(|l| l.starts_with('#'))).then_some(text)
}

/// The frames of each thread in gdb's output (`bt`, or `thread apply all bt` with its
/// `Thread N (...):` headers), innermost first; lines that are not frames are skipped, and a
/// `#0` without a header starts another thread.
pub fn parse_backtrace(text: &str) -> Vec<Vec<GdbFrame>> {
    let text = without_symbol_loading(text);
    let mut threads: Vec<Vec<GdbFrame>> = Vec::new();
    let mut current: Option<Vec<GdbFrame>> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if line.starts_with("Thread ") && line.ends_with("):") {
            threads.extend(current.replace(Vec::new()).filter(|t| !t.is_empty()));
            continue;
        }
        let Some((number, frame)) = parse_frame(line) else { continue };
        let frames = current.get_or_insert_with(Vec::new);
        if number == 0 && !frames.is_empty() {
            threads.push(std::mem::take(frames));
        }
        frames.push(frame);
    }
    threads.extend(current.filter(|t| !t.is_empty()));
    threads
}

/// `text` without gdb's `Reading symbols from FILE...` lines: gdb 13 prints one when it
/// loads a library's separate debug file while it prints a frame's arguments, in the middle of
/// that frame's line (`set print symbol-loading off` does not stop it).
fn without_symbol_loading(text: &str) -> String {
    const MESSAGE: &str = "Reading symbols from ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(MESSAGE) {
        let Some(end) = rest[start..].find("...\n") else { break };
        out.push_str(&rest[..start]);
        rest = &rest[start + end + 4..];
    }
    out.push_str(rest);
    out
}

/// `#N  [0xADDR in ]FUNCTION (ARGS)[ at FILE:LINE| from LIBRARY]`: N and the frame.
fn parse_frame(line: &str) -> Option<(u32, GdbFrame)> {
    let rest = line.strip_prefix('#')?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let number = rest[..digits].parse().ok()?;
    let rest = rest[digits..].strip_prefix(char::is_whitespace)?.trim_start();
    let rest = match rest.strip_prefix("0x") {
        Some(address) => address.split_once(" in ")?.1,
        None => rest,
    };
    let function = rest.split_once(" (").map_or(rest, |(f, _)| f).trim();
    if function.is_empty() {
        return None;
    }
    // The last ` at `: an argument may be a string that holds one.
    let location = rest.rsplit_once(") at ").and_then(|(_, at)| {
        let (file, line) = at.rsplit_once(':')?;
        Some((file.to_string(), line.trim().parse::<u32>().ok()?))
    });
    let (file, line) = location.map_or((None, None), |(f, l)| (Some(f), Some(l)));
    Some((number, GdbFrame { function: function.to_string(), file, line }))
}

/// Set before anything is loaded: no debuginfod downloads (gdb reaches no network for us).
pub const QUIET_SETTINGS: [&str; 1] = ["set debuginfod enabled off"];

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, file: Option<&str>, line: Option<u32>) -> GdbFrame {
        GdbFrame { function: function.into(), file: file.map(Into::into), line }
    }

    /// `thread apply all bt` of pserv's pool model attached by gdb 13 (some frames cut).
    const ATTACHED: &str = r#"[New LWP 20050]
[Thread debugging using libthread_db enabled]
Using host libthread_db library "/lib/x86_64-linux-gnu/libthread_db.so.1".
0x00007ff2b704826f in __GI___poll (fds=fds@entry=0x7fffc2338dd0, nfds=2, timeout=timeout@entry=-1) at ../sysdeps/unix/sysv/linux/poll.c:29
29	../sysdeps/unix/sysv/linux/poll.c: No such file or directory.

Thread 2 (Thread 0x7ff2b6f486c0 (LWP 20050) "server"):
#0  __futex_abstimed_wait_common64 (private=0, cancel=true, abstime=0x0, op=393, expected=0, futex_word=0x55e0accaa3c8 <qnonempty+40>) at ./nptl/futex-internal.c:57
#4  ___pthread_cond_wait (cond=cond@entry=0x55e0accaa3a0 <qnonempty>, mutex=mutex@entry=0x55e0accaa3e0 <qlock>) at ./nptl/pthread_cond_wait.c:618
#5  0x000055e0acca1e4d in pool_worker (arg=<optimized out>) at server.c:262
#6  0x00007ff2b6fd51f5 in start_thread (arg=<optimized out>) at ./nptl/pthread_create.c:442
#7  0x00007ff2b70558ec in clone3 () at ../sysdeps/unix/sysv/linux/x86_64/clone3.S:81

Thread 1 (Thread 0x7ff2b6f49740 (LWP 20048) "server"):
#0  0x00007ff2b704826f in __GI___poll (fds=fds@entry=0x7fffc2338dd0, nfds=2, timeout=timeout@entry=-1) at ../sysdeps/unix/sysv/linux/poll.c:29
#1  0x000055e0acca20e1 in next_connection (peer=peer@entry=0x7fffc2338e74 "", peersz=96) at server.c:173
#2  0x000055e0acca1c6d in run_pool () at server.c:292
#3  main (argc=<optimized out>, argv=<optimized out>) at server.c:574
[Inferior 1 (process 20048) detached]
"#;

    #[test]
    fn threads_of_an_attached_server() {
        let threads = parse_backtrace(ATTACHED);
        assert_eq!(threads.len(), 2);
        assert_eq!(threads[0].len(), 5);
        assert_eq!(threads[0][0], frame("__futex_abstimed_wait_common64", Some("./nptl/futex-internal.c"), Some(57)));
        assert_eq!(threads[0][2], frame("pool_worker", Some("server.c"), Some(262)));
        assert_eq!(threads[0][3], frame("start_thread", Some("./nptl/pthread_create.c"), Some(442)));
        assert_eq!(
            threads[1],
            vec![
                frame("__GI___poll", Some("../sysdeps/unix/sysv/linux/poll.c"), Some(29)),
                frame("next_connection", Some("server.c"), Some(173)),
                frame("run_pool", Some("server.c"), Some(292)),
                frame("main", Some("server.c"), Some(574)),
            ]
        );
    }

    /// `-batch -ex run -ex bt` of pserv's fork model on reqline-strtok.req (gdb 13), with the
    /// server's own output, a symbol-loading message inside a frame, and (a second `bt`)
    /// frames from a library without line information.
    const CRASH: &str = r#"Using port 20555
[New inferior 2 (process 4790)]
[bug] reqline-strtok

Thread 2.1 "server" received signal SIGSEGV, Segmentation fault.
[Switching to Thread 0x7ffff7d41bc0 (LWP 4790)]
__strlen_evex () at ../sysdeps/x86_64/multiarch/strlen-evex.S:79
79	../sysdeps/x86_64/multiarch/strlen-evex.S: No such file or directory.
#0  __strlen_evex () at ../sysdeps/x86_64/multiarch/strlen-evex.S:79
#1  0x000055555555866d in serve_one (c=c@entry=Reading symbols from /usr/lib/debug/.build-id/7e/bc65e52f2bbea498b4040fa92f7238377aaba9.debug...
0x5555555668d0) at http.c:600
#2  0x00005555555591d8 in handle_connection (fd=5, peer=<optimized out>) at http.c:193
#3  0x000055555555728a in run_fork () at server.c:384
#4  0x0000555555556c00 in main (argc=<optimized out>, argv=<optimized out>) at server.c:576
#0  0x00007ffff7f69e8d in sockfuzz::settle::die_by::h6d06b551b6985e41 () from /x/libsockfuzz.so
#1  0x00007ffff7fa2eef in <std[e28293b1aa0f68bd]::sys::thread::unix::Thread>::new::thread_start () from /x/libsockfuzz.so
#2  0x0000000000000000 in ?? ()
#3  log_line (msg=0x55555555a004 "look at this") at log.c:12
"#;

    #[test]
    fn frames_of_a_crash_and_a_second_bt() {
        let threads = parse_backtrace(CRASH);
        assert_eq!(threads.len(), 2, "{threads:?}");
        assert_eq!(threads[0][0], frame("__strlen_evex", Some("../sysdeps/x86_64/multiarch/strlen-evex.S"), Some(79)));
        assert_eq!(threads[0][1], frame("serve_one", Some("http.c"), Some(600)));
        assert_eq!(threads[0][4], frame("main", Some("server.c"), Some(576)));
        assert_eq!(threads[1][0], frame("sockfuzz::settle::die_by::h6d06b551b6985e41", None, None));
        assert_eq!(threads[1][1].function, "<std[e28293b1aa0f68bd]::sys::thread::unix::Thread>::new::thread_start");
        assert_eq!(threads[1][2], frame("??", None, None));
        assert_eq!(threads[1][3], frame("log_line", Some("log.c"), Some(12)));
    }

    #[test]
    fn no_stack_is_no_thread() {
        assert!(parse_backtrace("[Inferior 1 (process 5) exited normally]\nNo stack.\n").is_empty());
        assert!(parse_backtrace("#x not a frame\n#\n").is_empty());
    }
}
