//! Servers of other styles than the sample one, under tests/servers: the preload drives them
//! and their bugs are found where they happen (a pre-forked worker's crash is the run's).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// tests/servers/prefork: the parent listens and forks workers that accept; planted bug
/// `query-no-equals` (a query without `=`) crashes the worker.
fn prefork_src() -> PathBuf {
    repo().join("tests/servers/prefork")
}

const PREFORK_CRASH: &[u8] = b"GET /index.html?x HTTP/1.0\r\n\r\n";

/// A scratch build of `src` with gcc; returns the server.
fn make(src: &Path) -> PathBuf {
    let dir = scratch_dir("servers-build");
    copy_dir(src, &dir);
    let out = Command::new("make").args(["-s", "CC=gcc"]).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "make failed:\n{}", String::from_utf8_lossy(&out.stderr));
    dir.join("server")
}

/// `fuzzer run -- SERVER -p PORT -R WWW EXTRA..` on `input`.
fn run(server: &Path, extra: &[&str], input: &[u8]) -> Run {
    let port = free_port().to_string();
    run_with_input(
        Command::new(fuzzer()).args(["run", "--"]).arg(server).args(["-p", &port, "-R"]).arg(www()).args(extra),
        input,
        Duration::from_secs(20),
    )
}

#[test]
fn a_pre_forked_worker_is_driven_its_crash_is_the_runs_and_no_worker_outlives_the_run() {
    let server = make(&prefork_src());
    let dir = server.parent().unwrap();
    for workers in ["1", "4"] {
        let ok = run(&server, &["-w", workers], b"GET /index.html HTTP/1.0\r\n\r\n");
        assert_eq!(ok.code(), Some(0), "{workers} workers: {ok:?}");
        assert!(ok.stdout_text().starts_with("HTTP/1.0 200 OK"), "{}", ok.stdout_text());
        let crash = run(&server, &["-w", workers], PREFORK_CRASH);
        assert_eq!(crash.code(), Some(128 + libc::SIGSEGV), "{workers} workers: {crash:?}");
    }
    // The workers died with their runs (the parent-death signal), none holds the port.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(processes_under(dir), Vec::<i32>::new());
}

#[test]
fn a_campaign_on_a_pre_forked_server_finds_the_worker_crash_and_its_file_replays() {
    let _guard = exclusive();
    let out = scratch_dir("prefork-out").join("out");
    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(prefork_src()).arg("-o").arg(&out).args([
            "-d",
            "30",
            "--sanitizer",
            "none",
            "--no-cmplog",
            "--server-args=-p {port} -R {root} -w 2",
        ]),
        b"",
        Duration::from_secs(180),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let crashes = findings(&out.join("fuzz0/crashes"));
    assert!(!crashes.is_empty(), "no crash found:\n{}", run.stdout_text());
    assert!(crashes.iter().all(|c| file_name(c).contains("sig:11")), "{crashes:?}");
    assert_eq!(processes_under(&out), Vec::<i32>::new(), "left running");

    // Replayed with `fuzzer send` against the server started normally: a worker dies.
    let server = make(&prefork_src());
    for crash in crashes.iter().take(3) {
        let port = free_port();
        let mut child = spawn(Command::new(&server).args(["-p", &port.to_string(), "-R"]).arg(www()).args(["-w", "1"]));
        let stderr = collect(child.stderr.take().unwrap());
        assert!(wait_listening(port, Duration::from_secs(5)));
        let send = run_with_input(
            Command::new(fuzzer()).args(["send", "127.0.0.1", &port.to_string(), "--timeout", "3"]),
            &std::fs::read(crash).unwrap(),
            Duration::from_secs(10),
        );
        std::thread::sleep(Duration::from_millis(200));
        kill_group(&mut child);
        let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
        assert!(stderr.contains("died (signal 11)"), "{}: {send:?}\n{stderr}", file_name(crash));
    }
}
