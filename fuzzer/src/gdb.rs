//! gdb on a server under the preload: `fuzzer run --gdb` (gdb stops where the server crashes),
//! and for triage the stacks of a hung server and the backtrace of a crash in a build without
//! AddressSanitizer.
//!
//! gdb 13 without a shell (`startup-with-shell off`) splits the server's arguments at spaces and
//! keeps the backslashes it quoted them with, so gdb starts the server through `/bin/sh`, and
//! the exec-wrapper `env LD_PRELOAD=...` puts the preload in the server alone (not in gdb, not
//! in the shell), as gdb's manual suggests for `LD_PRELOAD`.

use crate::run::{self, Limits, Setup};
use anyhow::{bail, Context, Result};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Time gdb may take to read the server's symbols and start it, on top of a run's limits.
const STARTUP: Duration = Duration::from_secs(10);
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

fn on_path(path: Option<&OsStr>) -> bool {
    path.is_some_and(|path| {
        std::env::split_paths(path).any(|dir| {
            std::fs::metadata(dir.join("gdb")).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn require() -> Result<()> {
    require_on(std::env::var_os("PATH").as_deref())
}

fn require_on(path: Option<&OsStr>) -> Result<()> {
    if !on_path(path) {
        bail!("gdb is not installed (or not on PATH): install it with `apt-get install gdb`");
    }
    Ok(())
}

/// `fuzzer run --gdb[=ARGS] -- SERVER ARGS < FILE`: gdb on the server, its prompt on our
/// terminal; the reply copied to stdout if `output`. Returns gdb's exit status.
pub fn main(
    command: &[OsString],
    envs: &[(&str, &OsStr)],
    gdb_args: &str,
    limits: Limits,
    output: bool,
) -> Result<ExitCode> {
    require()?;
    let args = if gdb_args.trim().is_empty() {
        vec!["-ex".to_string(), "run".to_string()]
    } else {
        shlex::split(gdb_args)
            .with_context(|| format!("--gdb='{gdb_args}': unbalanced quotes; quote gdb's arguments as in a shell"))?
    };
    let (setup, status_write) = Setup::new(None, envs, limits)?;
    let terminal = Terminal::open();
    let mut cmd = gdb_command(&setup, command, &args)?;
    cmd.stdin(terminal.stdin()?).process_group(0);
    if terminal.tty.is_some() {
        // SAFETY: runs in the forked child before exec, where stdin is already the terminal and
        // the child leads its own process group; sigprocmask, getpgrp and tcsetpgrp are
        // async-signal-safe. SIGTTOU is blocked so that a background group may take the
        // terminal; the mask is put back before exec.
        unsafe {
            cmd.pre_exec(|| {
                let mut ttou: libc::sigset_t = std::mem::zeroed();
                let mut old: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut ttou);
                libc::sigaddset(&mut ttou, libc::SIGTTOU);
                libc::sigprocmask(libc::SIG_BLOCK, &ttou, &mut old);
                libc::tcsetpgrp(0, libc::getpgrp());
                libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
                Ok(())
            });
        }
    }
    // Our copy of the reply goes to the terminal while gdb's group owns it (`stty tostop`
    // would stop us); blocked until we have the terminal back.
    let ttou = BlockTtou::new();
    let mut gdb = cmd.spawn().context("cannot start gdb")?;
    drop(cmd); // its copy of the terminal
    drop(status_write);
    let mut header = Vec::new();
    let status = session(&mut gdb, &setup.status_read, None, |bytes| {
        let reply = strip_header(&mut header, bytes);
        if output && !reply.is_empty() {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(reply);
            let _ = stdout.flush();
        }
    });
    terminal.reclaim();
    drop(ttou);
    let code = status.and_then(|s| s.code()).unwrap_or(1);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// The backtrace of a crash: the server (`command`, with `envs` on top of the preload's, in
/// `cwd` if given) run under gdb in batch mode on `input` (`-batch -ex run -ex bt`, set up as
/// for `fuzzer run --gdb`), within the run's `limits` plus time for gdb to start. Returns gdb's
/// output and the server's, as they came (see [`parse_backtrace`]); when the server did not
/// crash, gdb's `bt` says `No stack.`. For builds without AddressSanitizer (whose own report
/// has the stack). Errors: gdb missing or not started, the input not written.
pub fn crash_backtrace(
    command: &[OsString],
    envs: &[(&str, &OsStr)],
    cwd: Option<&Path>,
    input: &[u8],
    limits: Limits,
) -> Result<String> {
    require()?;
    let (setup, status_write) = Setup::new(Some(input), envs, limits)?;
    let args: Vec<String> = ["-nx", "-batch", "-ex", "run", "-ex", "bt"].map(String::from).into();
    let mut cmd = gdb_command(&setup, command, &args)?;
    // One pipe for gdb's stdout and stderr (and the server's): the text in the order written.
    let (out_read, out_write) = run::pipe()?;
    cmd.stdin(Stdio::null()).stdout(out_write.try_clone()?).stderr(out_write).process_group(0);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let mut gdb = cmd.spawn().context("cannot start gdb")?;
    drop(cmd); // its copies of the pipe's write end, so that the pipe ends with gdb
    drop(status_write);
    let text = collect(File::from(out_read));
    session(&mut gdb, &setup.status_read, Some(limits.listen + limits.run + STARTUP), |_| {});
    Ok(String::from_utf8_lossy(&text.join().unwrap_or_default()).into_owned())
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
                // SAFETY: signalling the process group of the gdb we started, not yet reaped.
                unsafe { libc::kill(-(gdb.id() as i32), libc::SIGKILL) };
                let _ = gdb.wait();
                // A tracer that dies before it took the attach's SIGSTOP leaves the process
                // stopped. SAFETY: `pid` is the caller's process, which they asked us to look at.
                unsafe { libc::kill(pid, libc::SIGCONT) };
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
const QUIET_SETTINGS: [&str; 1] = ["set debuginfod enabled off"];

/// gdb on `command` with the preload's environment from `setup`, then `args` (gdb's own
/// options, e.g. `-batch -ex run`); the settings come first so that `args` may override them.
fn gdb_command(setup: &Setup, command: &[OsString], args: &[String]) -> Result<Command> {
    let library = setup.library.to_str().context("the path of libsockfuzz.so is not UTF-8: move it (SOCKFUZZ_LIB)")?;
    let preload = shlex::try_quote(&format!("LD_PRELOAD={library}"))
        .ok()
        .with_context(|| format!("the path of libsockfuzz.so cannot be quoted for a shell: {library}"))?
        .into_owned();
    let mut cmd = Command::new("gdb");
    // gdb's shell is $SHELL: a POSIX one for the quoting it does; the server gets the user's.
    cmd.env_remove("LD_PRELOAD").env("SHELL", "/bin/sh");
    setup.apply(&mut cmd);
    cmd.arg("-q").args(QUIET_SETTINGS.iter().flat_map(|s| ["-iex", s]));
    let shell = match std::env::var_os("SHELL") {
        Some(shell) => format!("set environment SHELL={}", shell.to_string_lossy()),
        None => "unset environment SHELL".into(),
    };
    let settings = [
        "set startup-with-shell on".to_string(),
        format!("set exec-wrapper env {preload}"),
        shell,
        // A fork-per-connection server crashes in the child it forked: keep every child under
        // gdb, and let them all run (with one process scheduled, the child would wait, stopped,
        // while the server waits for it), so that gdb stops at the crash, in the child.
        "set detach-on-fork off".into(),
        "set schedule-multiple on".into(),
    ];
    for setting in &settings {
        cmd.arg("-ex").arg(setting);
    }
    cmd.args(args).arg("--args").args(command);
    Ok(cmd)
}

/// Wait for gdb to end (at most `limit`), passing what the status pipe brings (the preload's
/// listening message, then the reply) to `on_status` meanwhile, so that a large reply never
/// stalls the server. Then kill gdb's process group (what is left of it: a batch gdb's server
/// runs in it; gdb itself kills the processes it started when it dies) and reap gdb. Returns
/// gdb's exit status, None when the limit ended it.
fn session(
    gdb: &mut Child,
    status: &OwnedFd,
    limit: Option<Duration>,
    mut on_status: impl FnMut(&[u8]),
) -> Option<ExitStatus> {
    let deadline = limit.map(|l| Instant::now() + l);
    let mut bytes = Vec::new();
    let ended = loop {
        let mut pfd = libc::pollfd { fd: status.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; at most 20 ms.
        let ready = unsafe { libc::poll(&mut pfd, 1, 20) };
        run::drain(status, &mut bytes);
        on_status(&bytes);
        let hung_up = ready > 0 && bytes.is_empty();
        bytes.clear();
        if exited(gdb) {
            break true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break false;
        }
        if hung_up {
            std::thread::sleep(Duration::from_millis(20)); // the pipe has ended: poll no longer waits
        }
    };
    // SAFETY: gdb (our child) has not been reaped yet, so its process group id is still ours
    // to signal.
    unsafe { libc::kill(-(gdb.id() as i32), libc::SIGKILL) };
    let status = gdb.wait().ok();
    if ended {
        status
    } else {
        None
    }
}

/// Whether gdb has ended, without reaping it (its group is killed first).
fn exited(gdb: &Child) -> bool {
    // SAFETY: siginfo_t is plain data, valid zeroed; waitid fills it; WNOWAIT leaves the child
    // to be reaped by `Child::wait`.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let options = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        libc::waitid(libc::P_PID, gdb.id(), &mut info, options) == 0 && info.si_pid() != 0
    }
}

/// The reply in `bytes`, after the preload's 7-byte listening message (`L`, port, pid), which
/// may arrive in pieces (`header` keeps it).
fn strip_header<'a>(header: &mut Vec<u8>, bytes: &'a [u8]) -> &'a [u8] {
    let take = (7 - header.len().min(7)).min(bytes.len());
    header.extend_from_slice(&bytes[..take]);
    &bytes[take..]
}

/// gdb's terminal: ours, handed to gdb's process group for the session, or /dev/null when we
/// have none (or are not in its foreground).
struct Terminal {
    tty: Option<File>,
}

impl Terminal {
    fn open() -> Terminal {
        let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok();
        // SAFETY: tcgetpgrp and getpgrp only read; the descriptor is open.
        let foreground = |t: &File| unsafe { libc::tcgetpgrp(t.as_raw_fd()) == libc::getpgrp() };
        Terminal { tty: tty.filter(foreground) }
    }

    fn stdin(&self) -> Result<Stdio> {
        Ok(match &self.tty {
            Some(tty) => tty.try_clone().context("cannot open the terminal for gdb")?.into(),
            None => Stdio::null(),
        })
    }

    /// Make our process group the terminal's foreground again.
    fn reclaim(&self) {
        if let Some(tty) = &self.tty {
            // SAFETY: tcsetpgrp on our open terminal, to our own group; SIGTTOU is blocked
            // (`BlockTtou`), so a background group may do it.
            unsafe { libc::tcsetpgrp(tty.as_raw_fd(), libc::getpgrp()) };
        }
    }
}

/// SIGTTOU blocked in this thread while alive.
struct BlockTtou(libc::sigset_t);

impl BlockTtou {
    fn new() -> BlockTtou {
        // SAFETY: sigset_t is plain data; pthread_sigmask changes this thread's mask only and
        // keeps the old one, put back on drop.
        unsafe {
            let mut ttou: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut ttou);
            libc::sigaddset(&mut ttou, libc::SIGTTOU);
            libc::pthread_sigmask(libc::SIG_BLOCK, &ttou, &mut old);
            BlockTtou(old)
        }
    }
}

impl Drop for BlockTtou {
    fn drop(&mut self) {
        // SAFETY: restores this thread's mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

fn collect(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

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

    #[test]
    fn header_is_stripped_across_pieces() {
        let mut header = Vec::new();
        assert_eq!(strip_header(&mut header, b"L\x00"), b"");
        assert_eq!(strip_header(&mut header, b"\x50\x00\x00\x01\x02HTTP"), b"HTTP");
        assert_eq!(strip_header(&mut header, b"/1.0"), b"/1.0");
    }

    /// The sample server, built once with gcc in a scratch folder (target/test-scratch, as the
    /// end-to-end tests do).
    fn pserv() -> std::path::PathBuf {
        static SERVER: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        SERVER
            .get_or_init(|| {
                let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/pserv");
                let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(format!("../target/test-scratch/gdb-unit-pserv-{}", std::process::id()));
                std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
                let _ = std::fs::remove_dir_all(&dir);
                assert!(Command::new("cp").arg("-a").arg(&src).arg(&dir).status().unwrap().success());
                let made =
                    Command::new("make").args(["-s", "CC=gcc", "CFLAGS=-g -O2"]).current_dir(&dir).output().unwrap();
                assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
                dir.join("server")
            })
            .clone()
    }

    fn port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[test]
    fn crash_backtrace_goes_through_the_crashing_function() {
        if !available() {
            eprintln!("skipped: gdb not installed (apt-get install gdb)");
            return;
        }
        let server = pserv();
        let www = server.with_file_name("www");
        let input = std::fs::read(server.with_file_name("bugs").join("reqline-strtok.req")).unwrap();
        let limits = Limits { listen: Duration::from_secs(5), run: Duration::from_secs(5), mem_mb: 0, stacks: false };
        for model in ["iterative", "fork"] {
            let command: Vec<OsString> = [server.as_os_str(), "-p".as_ref(), port().to_string().as_ref()]
                .into_iter()
                .map(OsString::from)
                .chain(["-R".into(), www.clone().into(), "-s".into(), "-m".into(), model.into()])
                .collect();
            let text = crash_backtrace(&command, &[], None, &input, limits).unwrap();
            assert!(text.contains("SIGSEGV"), "{model}: {text}");
            let threads = parse_backtrace(&text);
            assert_eq!(threads.len(), 1, "{model}: {text}");
            let serve_one = threads[0].iter().find(|f| f.function == "serve_one");
            assert_eq!(serve_one.and_then(|f| f.file.as_deref()), Some("http.c"), "{model}: {text}");
        }
    }

    #[test]
    fn attach_stacks_leaves_the_server_running() {
        if !available() {
            eprintln!("skipped: gdb not installed (apt-get install gdb)");
            return;
        }
        let server = pserv();
        let port = port();
        let mut child = Command::new(&server)
            .args(["-p", &port.to_string(), "-R"])
            .arg(server.with_file_name("www"))
            .args(["-s", "-m", "pool"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = child.id() as i32;
        let text = attach_stacks(pid);
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let answers = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        // SAFETY: the process group of the server this test started.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = child.wait();
        let text = text.expect("gdb could not attach (ptrace not permitted?)");
        let threads = parse_backtrace(&text);
        assert!(threads.len() >= 2, "{text}");
        assert!(threads.iter().flatten().any(|f| f.function == "pool_worker"), "{text}");
        assert!(threads.iter().flatten().any(|f| f.function == "main"), "{text}");
        let state = state.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
        assert_eq!(state, Some("S"), "not left waiting as it was");
        assert!(answers);
    }

    #[test]
    fn missing_gdb_names_the_fix() {
        let err = require_on(Some(OsStr::new("/nonexistent:/proc"))).unwrap_err();
        assert!(err.to_string().contains("apt-get install gdb"), "{err}");
        assert!(require_on(None).is_err());
        if Path::new("/usr/bin/gdb").is_file() {
            assert!(require_on(Some(OsStr::new("/nonexistent:/usr/bin"))).is_ok());
        }
    }
}
