//! The runner: one run of a server under the sockfuzz preload (the input written to its client,
//! the reply read, the run stopped at the verdict or a limit), and what it needs: the server
//! under test (`target`), the preload's library and settings (`preload`), the pipes between us
//! and the server (`pipes`), a run with a coverage map (`map`). Every stage and command that runs
//! a server goes through it.

pub mod map;
pub mod pipes;
pub mod preload;
pub mod target;

use anyhow::{bail, Context, Result};
use contract::env;
use nix::sys::prctl;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpgid, getpgrp, Pid};
use pipes::{collect, drain, pipe};
use preload::{
    EXIT_BLOCKED, EXIT_EOF_SPIN, EXIT_IDLE, EXIT_SETUP, EXIT_SPIN, EXIT_STUCK, SIG_FD_LEAK, SIG_MEM_LEAK, SIG_TRAVERSAL,
};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How one run under the preload ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered and closed the connection.
    Ok,
    Crash(i32),
    /// The server opened a path outside its web root: the path as opened, a tab, where it leads.
    Traversal(String),
    /// Each play of the test case left descriptors open: what they are (`; ` between kinds).
    DescriptorLeak(String),
    /// LeakSanitizer found memory the test case leaked (its report is on the server's stderr):
    /// how much the heap grew.
    MemoryLeak(String),
    /// EOF spin, or the connection not closed within the timeout.
    Hang,
    /// Every server thread waits for something that cannot come, with the connection open.
    LeftOpen,
    /// One connection stalled mid-request and another's request was left unread while the
    /// server slept: one slow client blocks the others.
    Blocked,
    /// The server exited on its own with this status after listening.
    Exited(i32),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => write!(f, "the server answered and closed the connection"),
            Outcome::Crash(sig) => write!(f, "the server crashed with signal {}", preload::signal_name(*sig)),
            Outcome::Traversal(finding) => {
                let (path, resolved) = finding.split_once('\t').unwrap_or((finding, finding));
                write!(
                    f,
                    "path traversal: the server reached {path:?}, which leads to {resolved}, outside its web root"
                )
            }
            Outcome::DescriptorLeak(what) => write!(
                f,
                "descriptor leak: each time the test case was played, the server kept more descriptors open after it: \
                 {what}"
            ),
            Outcome::MemoryLeak(_) => write!(
                f,
                "memory leak: LeakSanitizer found memory the server allocated for the test case and never freed \
                 (its report is above)"
            ),
            Outcome::Hang => {
                write!(f, "the server hung: it kept the connection open, or kept reading end-of-file without closing")
            }
            Outcome::LeftOpen => write!(
                f,
                "the server left the connection open: it waits (in accept, poll, a lock...) and nothing is left \
                 that would close it"
            ),
            Outcome::Blocked => write!(
                f,
                "one slow client blocks the others: while a connection sat mid-request, another's whole \
                 request was left unread and the server slept"
            ),
            Outcome::Exited(code) => write!(f, "the server exited with status {code} while handling the connection"),
        }
    }
}

/// How long a server may take to listen, and then to finish the run; the memory it may use
/// (MB, 0: no limit).
#[derive(Clone, Copy)]
pub struct Limits {
    pub listen: Duration,
    pub run: Duration,
    pub mem_mb: u64,
    /// On a hang, what takes the call stacks of each of the server's processes (by pid) before
    /// they are stopped: triage gives `gdb::stacks::attach_stacks`.
    pub stacks: Option<fn(i32) -> Option<String>>,
}

/// A finished run; the server's `stderr` is captured only when the input was given as bytes.
pub struct Finished {
    pub outcome: Outcome,
    /// The port the server listened on (0 if the preload could not tell).
    pub port: u16,
    /// What the server sent back on the connection.
    pub reply: Vec<u8>,
    pub stderr: Vec<u8>,
    /// gdb's `thread apply all bt` of each of the server's processes, on a hang with
    /// `Limits::stacks`.
    pub stacks: String,
}

/// Start `command` with the preload (plus `envs`), in `cwd` if given, and wait for the verdict.
/// The client's bytes are `input`, or our own stdin when `None` (then the server's output is not
/// captured, and the reply is copied to our stdout if `output`; else its stdout is dropped); the preload reads them from a
/// file (`SOCKFUZZ_INPUT_FILE`), so a server that closes or reuses fd 0 still gets them, and
/// sends the reply back on the status pipe, so a server that closes its stdout (a daemon) does
/// not lose it. Errors are the cases where the server could not be driven at all.
pub fn run(
    command: &[OsString],
    envs: &[(&str, &OsStr)],
    cwd: Option<&Path>,
    input: Option<&[u8]>,
    limits: Limits,
    output: bool,
) -> Result<Finished> {
    let (setup, status_write) = Setup::new(input, envs, limits)?;
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).env("LD_PRELOAD", &setup.library).stdin(Stdio::null()).process_group(0); // so a timeout can stop the server and any child it forked
    setup.apply(&mut cmd);
    if input.is_some() {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let program = Path::new(&command[0]).display().to_string();
    let _subreaper = Subreaper::new();
    let mut child = cmd.spawn().with_context(|| format!("cannot start the server `{program}`: check the path"))?;
    drop(status_write);
    let stderr = child.stderr.take().map(collect);
    let status_read = &setup.status_read;
    let mut listener = None;
    let mut reply = Vec::new();
    let mut stacks = String::new();
    let group = child.id() as i32;
    let result = match wait_listen(status_read, limits.listen) {
        Ok(Some((port, pid))) => {
            let mut server = Server::new(&mut child, pid);
            let outcome = wait_outcome(&mut server, status_read, &mut reply, limits.run);
            listener = server.daemon();
            if let Some(take) = limits.stacks.filter(|_| matches!(outcome, Ok(Outcome::Hang))) {
                stacks = group_members(group, pid).into_iter().filter_map(take).collect();
            }
            outcome.map(|outcome| (outcome, port))
        }
        Ok(None) => child.wait().map_err(Into::into).and_then(|status| {
            // In our namespace the cause may be ours, not the arguments': say both.
            let why = if setup.in_netns() {
                ", inside the private network namespace (loopback only) the fuzzer runs it in: if it needs \
                 the host's network (an interface, a name to look up), run the fuzzer with SOCKFUZZ_NETNS=0; \
                 else check its arguments (e.g. `-p PORT`) and its messages"
            } else {
                ": check its arguments (e.g. `-p PORT` with a free port) and its messages"
            };
            Err(anyhow::anyhow!("the server {} before it listened on a TCP socket{why}", describe(status)))
        }),
        Err(e) => Err(e),
    };
    stop(&mut child, listener);
    if output && input.is_none() {
        use std::io::Write;
        let _ = std::io::stdout().write_all(&reply);
    }
    let stderr = stderr.map(|t| t.join().unwrap_or_default()).unwrap_or_default();
    // The oracles' signals are findings only with the preload's description (not a server's own).
    let finding = std::fs::read_to_string(setup.finding()).ok();
    match (result, finding) {
        (Ok((Outcome::Crash(sig @ (SIG_TRAVERSAL | SIG_FD_LEAK | SIG_MEM_LEAK)), port)), Some(text)) => {
            let outcome = match sig {
                SIG_TRAVERSAL => Outcome::Traversal(text.trim_end().to_string()),
                SIG_FD_LEAK => Outcome::DescriptorLeak(preload::leak_detail(&text)),
                _ => Outcome::MemoryLeak(preload::leak_detail(&text)),
            };
            Ok(Finished { outcome, port, reply, stderr, stacks })
        }
        (Ok((outcome, port)), _) => Ok(Finished { outcome, port, reply, stderr, stacks }),
        (Err(e), _) if stderr.is_empty() => Err(e),
        (Err(e), _) => Err(e.context(ServerSaid(tail(&stderr, 15)))),
    }
}

/// The last lines the server wrote on stderr, the context of the error of a run that could not
/// drive it (the start-up check quotes them; `anyhow`'s `downcast_ref` finds them).
#[derive(Debug)]
pub struct ServerSaid(pub String);

impl std::fmt::Display for ServerSaid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server said:\n{}", self.0)
    }
}

/// The preload's side of one run, shared by [`run`] and `fuzzer run --gdb`: the input in a
/// scratch file, the finding file, the status pipe and the environment that names them.
pub struct Setup {
    pub library: PathBuf,
    /// What the preload reads, then the caller's own `envs` (which may override it).
    env: Vec<(OsString, OsString)>,
    /// The input and, after an oracle's finding, the preload's description of it: removed with it.
    scratch: tempfile::TempDir,
    /// Where the preload reports the port and pid of the listening process, then the reply.
    pub status_read: OwnedFd,
    status_fd: i32,
}

impl Setup {
    /// Write the input (`input`, or our stdin when `None`) to its scratch file and make the
    /// status pipe. The write end is returned apart: the caller drops it once the server (or
    /// gdb) has started, so that the pipe ends when they do.
    pub fn new(input: Option<&[u8]>, envs: &[(&str, &OsStr)], limits: Limits) -> Result<(Setup, OwnedFd)> {
        let library = preload::library()?;
        let scratch = tempfile::Builder::new()
            .prefix("sockfuzz-")
            .tempdir()
            .context("cannot make a scratch folder for the run (is the temporary folder, $TMPDIR, writable?)")?;
        let input_file = scratch.path().join("input");
        let bytes = match input {
            Some(bytes) => bytes.to_vec(),
            None => {
                let mut bytes = Vec::new();
                std::io::stdin().read_to_end(&mut bytes).context("cannot read the input from stdin")?;
                bytes
            }
        };
        std::fs::write(&input_file, &bytes)
            .with_context(|| format!("cannot write the input to {}", input_file.display()))?;
        let (status_read, status_write) = pipe()?;
        let status_fd = status_write.as_raw_fd();
        // The user's ASan options after ours (the last of a name wins), which the preload needs
        // (`verify_asan_link_order=0`: it is loaded before a gcc build's libasan).
        let asan = match std::env::var("ASAN_OPTIONS") {
            Ok(user) if !user.is_empty() => format!("{}:{user}", preload::ASAN_OPTIONS),
            _ => preload::ASAN_OPTIONS.into(),
        };
        let mut env: Vec<(OsString, OsString)> = vec![
            (env::name(env::STATUS_FD).into(), status_fd.to_string().into()),
            (env::name(env::OUTPUT).into(), "0".into()),
            (env::name(env::NETNS).into(), preload::netns().into()),
            (env::name(env::FINDING_FILE).into(), scratch.path().join("finding").into()),
            (env::name(env::INPUT_FILE).into(), input_file.into()),
            // A server idle this long with the connection open has left it open (a timer that
            // closes idle connections would have fired).
            (env::name(env::IDLE).into(), (limits.run / 2).min(Duration::from_secs(1)).as_millis().to_string().into()),
        ];
        env.extend(preload::memory_env(limits.mem_mb, &asan).map(|(k, v)| (k.into(), v.into())));
        env.extend(envs.iter().map(|(k, v)| (OsString::from(k), v.to_os_string())));
        Ok((Setup { library, env, scratch, status_read, status_fd }, status_write))
    }

    /// Whether the server runs in a network namespace of its own (the caller's `envs` may
    /// have said otherwise: the last `SOCKFUZZ_NETNS` counts).
    pub fn in_netns(&self) -> bool {
        self.env.iter().rev().find(|(k, _)| k == env::name(env::NETNS)).is_some_and(|(_, v)| v == "1")
    }

    /// Where the preload describes an oracle's finding (absent until there is one).
    fn finding(&self) -> PathBuf {
        self.scratch.path().join("finding")
    }

    /// Give `cmd` the preload's environment (all but `LD_PRELOAD`, which the caller puts where
    /// it belongs) and let it inherit the status pipe's write end.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let status_fd = self.status_fd;
        // SAFETY: pre_exec runs in the forked child before exec; fcntl is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(status_fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// The last `lines` lines of a process's output, for error messages.
pub fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The port and the listening process, once the preload reports that the server listens;
/// None if it exited first.
fn wait_listen(status: &OwnedFd, limit: Duration) -> Result<Option<(u16, i32)>> {
    if !pipes::readable(status, Some(limit)) {
        bail!(
            "the server did not listen on a TCP socket within {} s: does it take a port argument (`-p PORT`), and does it call listen()?",
            limit.as_secs_f64()
        );
    }
    // `L`, the port and the pid, written at once (a pipe write of 7 bytes is atomic).
    let mut m = [0u8; 7];
    let mut file = File::from(status.try_clone()?);
    Ok(match file.read(&mut m)? {
        7 => Some((u16::from_be_bytes([m[1], m[2]]), i32::from_be_bytes([m[3], m[4], m[5], m[6]]))),
        _ => None,
    })
}

/// The process whose end is the run's: the one started, or the daemon it forked that listens.
struct Server<'a> {
    child: &'a mut Child,
    listener: i32,
}

impl<'a> Server<'a> {
    fn new(child: &'a mut Child, listener: i32) -> Self {
        Server { child, listener }
    }

    /// The daemon, while it may still run (not reaped by us: its pid is still its own).
    fn daemon(&self) -> Option<i32> {
        (self.listener != self.child.id() as i32 && self.listener > 0).then_some(self.listener)
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.listener == self.child.id() as i32 {
            return Ok(self.child.try_wait()?);
        }
        let _ = self.child.try_wait(); // the parent that went away: reaped
        let listener = Pid::from_raw(self.listener);
        match waitpid(listener, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => Ok(None),
            Ok(status) => {
                self.listener = 0; // reaped: its pid may be anyone's now
                Ok(Some(match status {
                    WaitStatus::Signaled(_, signal, _) => ExitStatus::from_raw(signal as i32),
                    WaitStatus::Exited(_, code) => ExitStatus::from_raw(code << 8),
                    _ => ExitStatus::from_raw(0),
                }))
            }
            // Not our child yet (its parent, a step of the daemon's double fork, is still
            // there): alive, or already gone and reaped by someone else.
            Err(_) => {
                // No signal: only whether the process exists.
                let alive = kill(listener, None).is_ok();
                if alive {
                    Ok(None)
                } else {
                    bail!("the server's background process {} ended where it could not be followed", self.listener)
                }
            }
        }
    }
}

/// Wait for the server's verdict, collecting the reply from the status pipe meanwhile (a reply
/// larger than the pipe holds would otherwise stall the run).
fn wait_outcome(server: &mut Server, pipe: &OwnedFd, reply: &mut Vec<u8>, timeout: Duration) -> Result<Outcome> {
    let deadline = Instant::now() + timeout;
    loop {
        drain(pipe, reply);
        if let Some(status) = server.try_wait()? {
            // The process has ended: all it wrote is in the pipe.
            drain(pipe, reply);
            return Ok(match (status.signal(), status.code()) {
                (Some(sig), _) => Outcome::Crash(sig),
                (_, Some(0)) => Outcome::Ok,
                (_, Some(EXIT_EOF_SPIN | EXIT_SPIN)) => Outcome::Hang,
                (_, Some(EXIT_IDLE | EXIT_STUCK)) => Outcome::LeftOpen,
                (_, Some(EXIT_BLOCKED)) => Outcome::Blocked,
                (_, Some(EXIT_SETUP)) => bail!("sockfuzz could not drive the server (see its message above)"),
                (_, code) => Outcome::Exited(code.unwrap_or(-1)),
            });
        }
        if Instant::now() >= deadline {
            return Ok(Outcome::Hang);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The processes of process group `group` (the run's), `first` (the listening one) first, at
/// most four: a fork-per-connection server's hung child is one of them.
fn group_members(group: i32, first: i32) -> Vec<i32> {
    let mut pids = vec![first];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // "PID (COMM) STATE PPID PGRP ...": COMM may hold spaces and parentheses.
        let pgrp = stat.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<i32>().ok());
        if pgrp == Some(group) && pid != first && pids.len() < 4 {
            pids.push(pid);
        }
    }
    pids
}

/// Kill the server's process group (ours: it was started in its own group), and the daemon
/// that listened with its own group if it left ours; reap them.
fn stop(child: &mut Child, listener: Option<i32>) {
    // Even when the server has ended: what it forked may still run. The process group we
    // created for this child (its id stays reserved while any member lives).
    let group = Pid::from_raw(child.id() as i32);
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
    // Members of the group orphaned during the run became our children (`Subreaper`): reaped
    // (only our children in the run's own process group, just killed).
    while waitpid(Pid::from_raw(-group.as_raw()), None).is_ok() {}
    if let Some(pid) = listener.map(Pid::from_raw) {
        // The server's own daemon (it reported its pid, and we have not reaped it, so the pid
        // is still its) and its group, which `setsid` made its own; reaped if it is our child
        // by now.
        if let Some(group) = getpgid(Some(pid)).ok().filter(|&g| g != getpgrp()) {
            let _ = killpg(group, Signal::SIGKILL);
        }
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
    }
}

/// This process is a child subreaper while any run is in progress (runs may go on in several
/// threads, as in triage): a server that forks into the background before it listens leaves a
/// grandchild, which becomes our child when its parent exits, so that its end can be waited for.
/// Only then: a campaign forks its instances from the process that made the start-up check, and
/// the orphans of their servers (a pre-forked server's workers) would become its zombies.
struct Subreaper;

static RUNS_IN_PROGRESS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl Subreaper {
    fn new() -> Subreaper {
        let mut runs = RUNS_IN_PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
        if *runs == 0 {
            let _ = prctl::set_child_subreaper(true);
        }
        *runs += 1;
        Subreaper
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        let mut runs = RUNS_IN_PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
        *runs -= 1;
        if *runs == 0 {
            let _ = prctl::set_child_subreaper(false);
        }
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.signal(), status.code()) {
        (Some(sig), _) => format!("was killed by signal {}", preload::signal_name(sig)),
        (_, Some(code)) => format!("exited with status {code}"),
        _ => "ended".into(),
    }
}
