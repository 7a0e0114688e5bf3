//! `fuzzer run -- SERVER ARGS < INPUT`: one run of a server under the sockfuzz preload, with a
//! verdict in plain words (replaces the old `fuzz-rerun.sh`).

use crate::preload::{self, EXIT_EOF_SPIN, EXIT_IDLE, EXIT_SETUP, EXIT_STUCK, SIG_TRAVERSAL};
use anyhow::{bail, Context, Result};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
#[command(after_help = "Exit status: 0 the server answered and closed the connection; \
128+N it crashed with signal N; 124 it hung (kept the connection open, or read end-of-file \
in a loop); 140 (128+SIGUSR2) it opened a path outside the --root folder; 1 it could not be \
driven (never listened, exited early).")]
pub struct Args {
    /// The web root the server was given: a path it opens outside that folder (through `..`, an
    /// encoded `%2e%2e`, or a symlink) ends the run as a path traversal.
    #[arg(long, value_name = "DIR")]
    pub root: Option<std::path::PathBuf>,
    /// Seconds the server may take to answer and close the connection.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Seconds the server may take to start listening.
    #[arg(long, default_value_t = 5.0)]
    pub listen_timeout: f64,
    /// Do not copy the server's reply to stdout.
    #[arg(long, short)]
    pub quiet: bool,
    /// The server and its arguments, e.g. `./server -p 8080 -R www`.
    #[arg(required = true, last = true)]
    pub command: Vec<String>,
}

/// How one run under the preload ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered and closed the connection.
    Ok,
    Crash(i32),
    /// The server opened a path outside its web root: the path as opened, a tab, where it leads.
    Traversal(String),
    /// EOF spin, or the connection not closed within the timeout.
    Hang,
    /// Every server thread waits for something that cannot come, with the connection open.
    LeftOpen,
    /// The server exited on its own with this status after listening.
    Exited(i32),
}

pub fn main(args: &Args) -> Result<ExitCode> {
    let command: Vec<OsString> = args.command.iter().map(OsString::from).collect();
    let limits =
        Limits { listen: Duration::from_secs_f64(args.listen_timeout), run: Duration::from_secs_f64(args.timeout) };
    let root = match &args.root {
        Some(root) => Some(
            root.canonicalize().with_context(|| format!("--root {}: no such folder", root.display()))?.into_os_string(),
        ),
        None => None,
    };
    let envs: Vec<(&str, &OsStr)> = root.iter().map(|r| ("SOCKFUZZ_ROOT", r.as_os_str())).collect();
    let finished = run(&command, &envs, None, limits, !args.quiet)?;
    let code = match finished.outcome {
        Outcome::Ok => 0,
        Outcome::Crash(sig) => 128 + sig,
        Outcome::Traversal(_) => 128 + SIG_TRAVERSAL,
        Outcome::Hang | Outcome::LeftOpen => 124,
        Outcome::Exited(_) => 1,
    };
    eprintln!("[run] {}", finished.outcome);
    Ok(ExitCode::from(code as u8))
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
            Outcome::Hang => {
                write!(f, "the server hung: it kept the connection open, or kept reading end-of-file without closing")
            }
            Outcome::LeftOpen => write!(
                f,
                "the server left the connection open: it waits (in accept, poll, a lock...) and nothing is left \
                 that would close it"
            ),
            Outcome::Exited(code) => write!(f, "the server exited with status {code} while handling the connection"),
        }
    }
}

/// How long a server may take to listen, and then to finish the run.
#[derive(Clone, Copy)]
pub struct Limits {
    pub listen: Duration,
    pub run: Duration,
}

/// A finished run; `stdout`/`stderr` are captured only when the input was given as bytes.
pub struct Finished {
    pub outcome: Outcome,
    /// The port the server listened on (0 if the preload could not tell).
    pub port: u16,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Start `command` with the preload (plus `envs`) and wait for the verdict. The client's bytes
/// are `input`, or our own stdin when `None` (then the server's output is not captured); the
/// preload reads them from a file (`SOCKFUZZ_INPUT_FILE`), so a server that closes or reuses
/// fd 0 still gets them. Errors are the cases where the server could not be driven at all.
pub fn run(
    command: &[OsString],
    envs: &[(&str, &OsStr)],
    input: Option<&[u8]>,
    limits: Limits,
    output: bool,
) -> Result<Finished> {
    let library = preload::library()?;
    let finding = ScratchFile::new("finding");
    let input_file = ScratchFile::new("input");
    let bytes = match input {
        Some(bytes) => bytes.to_vec(),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes).context("cannot read the input from stdin")?;
            bytes
        }
    };
    std::fs::write(&input_file.0, &bytes)
        .with_context(|| format!("cannot write the input to {}", input_file.0.display()))?;
    let (status_read, status_write) = pipe()?;
    let status_fd = status_write.as_raw_fd();
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env("LD_PRELOAD", &library)
        .env("SOCKFUZZ_STATUS_FD", status_fd.to_string())
        .env("SOCKFUZZ_OUTPUT", if output { "1" } else { "0" })
        .env("SOCKFUZZ_FINDING_FILE", &finding.0)
        .env("SOCKFUZZ_INPUT_FILE", &input_file.0)
        .stdin(Stdio::null())
        // A server idle this long with the connection open has left it open (a timer that
        // closes idle connections would have fired).
        .env("SOCKFUZZ_IDLE", (limits.run / 2).min(Duration::from_secs(1)).as_millis().to_string())
        .env("ASAN_OPTIONS", std::env::var_os("ASAN_OPTIONS").unwrap_or_else(|| preload::ASAN_OPTIONS.into()))
        .envs(envs.iter().copied())
        .process_group(0); // so a timeout can stop the server and any child it forked
    if input.is_some() {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    // SAFETY: pre_exec runs in the forked child before exec; fcntl is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(status_fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let program = Path::new(&command[0]).display().to_string();
    let mut child = cmd.spawn().with_context(|| format!("cannot start the server `{program}`: check the path"))?;
    drop(status_write);
    let stdout = child.stdout.take().map(collect);
    let stderr = child.stderr.take().map(collect);
    let result = match wait_listen(&status_read, limits.listen) {
        Ok(Some(port)) => wait_outcome(&mut child, limits.run).map(|outcome| (outcome, port)),
        Ok(None) => child.wait().map_err(Into::into).and_then(|status| {
            Err(anyhow::anyhow!(
                "the server {} before it listened on a TCP socket: check its arguments (e.g. `-p PORT` with a free port) and its messages",
                describe(status)
            ))
        }),
        Err(e) => Err(e),
    };
    stop(&mut child);
    let stdout = stdout.map(|t| t.join().unwrap_or_default()).unwrap_or_default();
    let stderr = stderr.map(|t| t.join().unwrap_or_default()).unwrap_or_default();
    match result {
        Ok((Outcome::Crash(SIG_TRAVERSAL), port)) if finding.0.is_file() => {
            let text = std::fs::read_to_string(&finding.0).unwrap_or_default().trim_end().to_string();
            Ok(Finished { outcome: Outcome::Traversal(text), port, stdout, stderr })
        }
        Ok((outcome, port)) => Ok(Finished { outcome, port, stdout, stderr }),
        Err(e) if stderr.is_empty() => Err(e),
        Err(e) => Err(e.context(format!("the server said:\n{}", tail(&stderr, 15)))),
    }
}

/// A scratch file for the preload (the input; its description of a path traversal), removed
/// when dropped.
struct ScratchFile(std::path::PathBuf);

impl ScratchFile {
    fn new(what: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ScratchFile(std::env::temp_dir().join(format!("sockfuzz-{what}-{}-{n}", std::process::id())))
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The last `lines` lines of a process's output, for error messages.
pub fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn collect(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// The port, once the preload reports that the server listens; None if it exited first.
fn wait_listen(status: &OwnedFd, limit: Duration) -> Result<Option<u16>> {
    let mut pfd = libc::pollfd { fd: status.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = limit.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
    if ready == 0 {
        bail!(
            "the server did not listen on a TCP socket within {} s: does it take a port argument (`-p PORT`), and does it call listen()?",
            limit.as_secs_f64()
        );
    }
    // `L` and the port, written at once (a pipe write of 3 bytes is atomic).
    let mut message = [0u8; 3];
    let mut file = File::from(status.try_clone()?);
    Ok(match file.read(&mut message)? {
        0 => None,
        _ => Some(u16::from_be_bytes([message[1], message[2]])),
    })
}

fn wait_outcome(child: &mut Child, timeout: Duration) -> Result<Outcome> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(match (status.signal(), status.code()) {
                (Some(sig), _) => Outcome::Crash(sig),
                (_, Some(0)) => Outcome::Ok,
                (_, Some(EXIT_EOF_SPIN)) => Outcome::Hang,
                (_, Some(EXIT_IDLE | EXIT_STUCK)) => Outcome::LeftOpen,
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

/// Kill the server's process group (ours: it was started in its own group) and reap it.
fn stop(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        // SAFETY: signalling the process group we created for this child.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.signal(), status.code()) {
        (Some(sig), _) => format!("was killed by signal {}", preload::signal_name(sig)),
        (_, Some(code)) => format!("exited with status {code}"),
        _ => "ended".into(),
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot create a pipe");
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
