//! Helpers shared by the end-to-end tests: the built binaries, the sample pserv, free ports and
//! bounded process runs. Every process is started in its own process group and killed by us.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The preload's exit statuses (EOF spin, idle verdicts, ...), written down once.
pub use contract::verdicts::*;
/// Tests that cannot run here (a tool missing) say so as skipped.
mod skip;
pub use skip::*;
/// The AFL++ fork-server protocol, fuzzer side (the runtime tests speak it by hand).
pub mod forkserver;
pub const MODELS: [&str; 5] = ["iterative", "thread", "pool", "epoll", "fork"];
/// `--server-args` for the sample server in the thread model.
pub const THREAD_MODEL: &str = "--server-args=-p {port} -R {root} -s -m thread";

pub fn fuzzer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fuzzer"))
}

/// `libsockfuzz.so`, built by `cargo build --workspace` next to the fuzzer binary.
pub fn preload() -> PathBuf {
    let lib = fuzzer().with_file_name("libsockfuzz.so");
    assert!(lib.is_file(), "{} missing: run `cargo build --release --workspace` first", lib.display());
    lib
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn pserv_src() -> PathBuf {
    repo().join("tests/pserv")
}

/// The sample server, built once per run of the tests with plain gcc in a scratch copy. Its
/// planted bugs announce themselves on stderr (`[bug] NAME`) just before they strike.
pub fn pserv() -> &'static Path {
    static SERVER: OnceLock<PathBuf> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = scratch_dir("pserv-build");
        copy_dir(&pserv_src(), &dir);
        let out = Command::new("make")
            .args(["-s", "CC=gcc", "CFLAGS=-g -O2 -DPSERV_BUG_TRACE"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "make failed:\n{}", String::from_utf8_lossy(&out.stderr));
        dir.join("server")
    })
}

/// The sample server built by AFL++'s `afl-clang-fast` in a scratch copy, with extra `envs`
/// for the AFL++ compiler (e.g. `AFL_LLVM_CMPLOG=1`); None (the test is skipped, see
/// [`require`]) when AFL++ is not installed.
pub fn afl_clang_fast_pserv(envs: &[(&str, &str)]) -> Option<PathBuf> {
    if !require("afl-clang-fast") {
        return None;
    }
    let src = pserv_copy();
    let built = Command::new("make")
        .args(["-s", "CC=afl-clang-fast"])
        .env("AFL_QUIET", "1")
        .envs(envs.iter().copied())
        .current_dir(&src)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    Some(src.join("server"))
}

/// A scratch copy of tests/pserv (a source folder a campaign may build from).
pub fn pserv_copy() -> PathBuf {
    let src = scratch_dir("pserv-src");
    copy_dir(&pserv_src(), &src);
    src
}

pub fn www() -> PathBuf {
    pserv_src().join("www")
}

/// A fresh directory under the target dir (kept after the test for inspection).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = repo().join("target/test-scratch").join(format!("{name}-{}-{}", std::process::id(), next_id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn next_id() -> u32 {
    static ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    ID.fetch_add(1, Ordering::Relaxed)
}

pub fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(format!("{}/.", from.display())).arg(to).status().unwrap();
    assert!(status.success());
}

/// A port below 32768 (outside the ephemeral range), free for IPv4 and IPv6 right now.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ =
        NEXT.compare_exchange(0, 20000 + (std::process::id() % 400) as u16 * 30, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20000 + (port - 20000) % 12000;
        if TcpListener::bind(("0.0.0.0", port)).is_ok() && TcpListener::bind(("::", port)).is_ok() {
            return port;
        }
    }
}

/// A finished (or timed-out) process run.
#[derive(Debug)]
pub struct Run {
    /// None when it was still running at the deadline (then it was killed).
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn signal(&self) -> Option<i32> {
        self.status.and_then(|s| s.signal())
    }
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Start `cmd` in its own process group with piped stdio.
pub fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).spawn().unwrap()
}

/// Feed `input`, wait up to `limit`, then kill the whole group if still running.
pub fn run_with_input(cmd: &mut Command, input: &[u8], limit: Duration) -> Run {
    let start = Instant::now();
    let mut child = spawn(cmd);
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let status = wait_for(&mut child, limit);
    let elapsed = start.elapsed();
    kill_group(&mut child);
    let _ = writer.join();
    Run {
        status,
        stdout: out.join().unwrap(),
        stderr: String::from_utf8_lossy(&err.join().unwrap()).into_owned(),
        elapsed,
    }
}

pub fn collect(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

pub fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Wait up to `limit` for a child (one started without a process group of its own, as the
/// fork-server tests start theirs); past it kill the child, by pid, reap it and return None.
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let status = wait_for(child, limit);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// [`wait_or_kill`], where a child still running at `limit` fails the test.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
    wait_or_kill(child, limit).unwrap_or_else(|| panic!("process {} did not finish within {limit:?}", child.id()))
}

/// Poll `done` every 200 ms until it holds; past `limit` fail the test, naming `what`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `fuzzer run ARGS` on `input`; past `limit` its process group is killed.
pub fn fuzzer_run(args: &[&str], input: &[u8], limit: Duration) -> Run {
    run_with_input(Command::new(fuzzer()).arg("run").args(args), input, limit)
}

/// `fuzzer build` of `src` (`--src-dir`) into a fresh OUT, with `extra` options; the run and OUT.
pub fn fuzzer_build(src: &Path, extra: &[&str], limit: Duration) -> (Run, PathBuf) {
    let out = scratch_dir("build-out").join("out");
    let run = run_with_input(
        Command::new(fuzzer()).arg("build").arg("--src-dir").arg(src).arg("-o").arg(&out).args(extra),
        b"",
        limit,
    );
    (run, out)
}

/// Kill the child's process group (we created it) and reap the child.
pub fn kill_group(child: &mut Child) {
    // SAFETY: signalling a process group this test created.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// The sample server under the preload, reading the client's bytes from stdin.
pub fn preloaded(server: &Path, port: u16, model: &str) -> Command {
    let mut cmd = Command::new(server);
    cmd.args(["-p", &port.to_string(), "-R"]).arg(www()).args(["-s", "-m", model]).env("LD_PRELOAD", preload());
    cmd
}

/// Wait until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// One planted bug of the sample server, from tests/pserv/bugs/manifest.tsv.
#[derive(Debug, Clone)]
pub struct Bug {
    pub name: String,
    pub file: PathBuf,
    /// SIGSEGV, SIGABRT, hang or asan.
    pub expect: String,
    pub after_close: bool,
}

impl Bug {
    pub fn signal(&self) -> Option<i32> {
        match self.expect.as_str() {
            "SIGSEGV" => Some(libc::SIGSEGV),
            "SIGABRT" => Some(libc::SIGABRT),
            _ => None,
        }
    }
    pub fn input(&self) -> Vec<u8> {
        std::fs::read(&self.file).unwrap()
    }
}

pub fn bugs() -> Vec<Bug> {
    let dir = pserv_src().join("bugs");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    manifest
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Bug { name: cols[0].into(), file: dir.join(cols[1]), expect: cols[2].into(), after_close: cols[4] == "yes" }
        })
        .collect()
}

/// The planted bug a server's stderr says was hit last.
pub fn bug_hit(stderr: &str) -> Option<String> {
    stderr.lines().rev().find_map(|l| l.strip_prefix("[bug] ")).map(str::to_string)
}

/// What replaying one finding with `fuzzer send` against a fresh plain sample server did.
pub struct Replay {
    pub send: Run,
    /// The server's fate: Some(signal) if it died.
    pub signal: Option<i32>,
    /// The planted bug it announced last, if any.
    pub bug: Option<String>,
    /// Every planted bug it announced (some announce themselves without striking).
    pub bugs: Vec<String>,
}

/// Send `input` with `fuzzer send` to a fresh [`pserv`] (thread model) and see what happens.
pub fn replay(input: &[u8]) -> Replay {
    let port = free_port();
    let mut cmd = Command::new(pserv());
    cmd.args(["-p", &port.to_string(), "-R"]).arg(www()).args(["-s", "-m", "thread"]);
    let (send, status, stderr) = send_to(&mut cmd, port, input, Duration::from_secs(5));
    let bugs = stderr.lines().filter_map(|l| l.strip_prefix("[bug] ")).map(str::to_string).collect();
    Replay { send, signal: status.and_then(|s| s.signal()), bug: bug_hit(&stderr), bugs }
}

/// Start `server` (it listens on `port`), send `input` with `fuzzer send`, give the server up
/// to `wait` to end, then kill its process group: what `fuzzer send` did, how the server ended
/// if it did, and its stderr.
pub fn send_to(server: &mut Command, port: u16, input: &[u8], wait: Duration) -> (Run, Option<ExitStatus>, String) {
    let mut child = spawn(server);
    let stderr = collect(child.stderr.take().unwrap());
    assert!(wait_listening(port, Duration::from_secs(5)));
    let send = run_with_input(
        Command::new(fuzzer()).args(["send", "127.0.0.1", &port.to_string(), "--timeout", "3"]),
        input,
        Duration::from_secs(10),
    );
    let status = wait_for(&mut child, wait);
    kill_group(&mut child);
    (send, status, String::from_utf8_lossy(&stderr.join().unwrap()).into_owned())
}

/// A scratch build of `src` (a folder with a Makefile) with gcc and extra CFLAGS; returns the
/// server it built.
pub fn make_with_gcc(src: &Path, cflags: &str) -> PathBuf {
    make_with("gcc", src, cflags)
}

/// The same with clang; None (the test is skipped, see [`require`]) when clang is not installed.
pub fn make_with_clang(src: &Path, cflags: &str) -> Option<PathBuf> {
    if !require("clang") {
        return None;
    }
    Some(make_with("clang", src, cflags))
}

fn make_with(cc: &str, src: &Path, cflags: &str) -> PathBuf {
    let dir = scratch_dir(&format!("{cc}-build"));
    copy_dir(src, &dir);
    let out = Command::new("make")
        .args(["-s", &format!("CC={cc}"), &format!("CFLAGS=-g -O2 {cflags}")])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "make failed:\n{}", String::from_utf8_lossy(&out.stderr));
    dir.join("server")
}

/// The benign requests of tests/pserv/benign/.
pub fn benign() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> =
        std::fs::read_dir(pserv_src().join("benign")).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Campaigns pin clients to cores: every test that starts one (or measures the machine while
/// one runs) holds this, so they run one at a time.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Processes whose executable lies under `dir` (the targets a campaign built there), by PID.
pub fn processes_under(dir: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.starts_with(dir)))
        .collect()
}

/// SysV shared memory segments that exist now.
pub fn shm_segments() -> Vec<u64> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    table.lines().skip(1).filter_map(|l| l.split_whitespace().nth(1)?.parse().ok()).collect()
}

/// Segments not in `before` that no process has attached: left behind, never to be freed.
pub fn leaked_shm(before: &[u64]) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 6 && cols[6] == "0" && cols[1].parse().is_ok_and(|id: u64| !before.contains(&id))
        })
        .map(str::to_string)
        .collect()
}

/// The finding files (`id:...`) of a queue, crashes or hangs folder, sorted.
pub fn findings(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| file_name(p).starts_with("id:")).collect())
        .unwrap_or_default();
    files.sort();
    files
}

pub fn file_name(path: &Path) -> String {
    path.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

/// The value of `key` in a `fuzzer_stats` text (key padded to 18 columns, then `: `).
pub fn stat_value<'a>(stats: &'a str, key: &str) -> Option<&'a str> {
    stats.lines().find_map(|l| l.strip_prefix(&format!("{key:<18}: ")))
}

/// A number from the `fuzzer_stats` of the instance folder `dir` (None before it is written).
pub fn stat(dir: &Path, key: &str) -> Option<u64> {
    stat_value(&std::fs::read_to_string(dir.join("fuzzer_stats")).ok()?, key)?.parse().ok()
}
