//! Servers of other styles than the sample one, under tests/servers: the preload drives them
//! and their bugs are found where they happen (a pre-forked worker's crash is the run's).

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// tests/servers/prefork: the parent listens and forks workers that accept; planted bug
/// `query-no-equals` (a query without `=`) crashes the worker.
fn prefork_src() -> PathBuf {
    repo().join("tests/servers/prefork")
}

const PREFORK_CRASH: &[u8] = b"GET /index.html?x HTTP/1.0\r\n\r\n";

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
    let server = make_with_gcc(&prefork_src(), "");
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

/// Zombie processes whose parent is `pid`.
fn zombies_of(pid: u32) -> usize {
    let stat = |p: i32| std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
    let fields =
        |text: &str| text.rsplit_once(") ").map(|(_, rest)| rest.split(' ').map(str::to_string).collect::<Vec<_>>());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter_map(|p| fields(&stat(p)))
        .filter(|f| f.len() > 1 && f[0] == "Z" && f[1] == pid.to_string())
        .count()
}

/// The workers a killed pre-forked server leaves are orphans: they must not become zombie
/// children of the fuzzer (which made its start-up check as a child subreaper), which piled
/// up thousands a second until the machine ran out of processes.
#[test]
fn a_pre_forked_server_leaves_no_zombies_with_the_fuzzer() {
    let _guard = exclusive();
    let out = scratch_dir("prefork-zombies").join("out");
    let mut campaign = spawn(Command::new(fuzzer()).arg("--src-dir").arg(prefork_src()).arg("-o").arg(&out).args([
        "-d",
        "300",
        "--sanitizer",
        "none",
        "--no-cmplog",
        "--no-triage",
        "--server-args=-p {port} -R {root} -w 2",
    ]));
    // Until 2000 test cases, however loaded the machine (a fixed duration ran fewer under CI's load).
    let deadline = Instant::now() + Duration::from_secs(240);
    while stat(&out.join("fuzz0"), "execs_done").unwrap_or(0) < 2000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let zombies = zombies_of(campaign.id());
    // Ctrl-C, as a terminal sends it to the foreground group: the campaign ends cleanly with 0.
    // SAFETY: signalling the process group this test created.
    unsafe { libc::kill(-(campaign.id() as i32), libc::SIGINT) };
    let status = wait_for(&mut campaign, Duration::from_secs(60));
    kill_group(&mut campaign);
    assert!(stat(&out.join("fuzz0"), "execs_done").unwrap_or(0) >= 2000, "the campaign did not run");
    assert!(zombies < 50, "{zombies} zombie children of the fuzzer");
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

#[test]
fn a_campaign_on_a_pre_forked_server_finds_the_worker_crash_and_its_file_replays() {
    let _guard = exclusive();
    let out = scratch_dir("prefork-out").join("out");
    let run = run_with_input(
        // Until the first crash, for at most 90 s (most runs find it within seconds).
        Command::new(fuzzer()).arg("--src-dir").arg(prefork_src()).arg("-o").arg(&out).args([
            "--stop-on-crash",
            "-d",
            "90",
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
    let server = make_with_gcc(&prefork_src(), "");
    for crash in crashes.iter().take(3) {
        let port = free_port();
        let mut cmd = Command::new(&server);
        cmd.args(["-p", &port.to_string(), "-R"]).arg(www()).args(["-w", "1"]);
        // The parent outlives its workers: a moment for its line, not for its end.
        let (send, _, stderr) = send_to(&mut cmd, port, &std::fs::read(crash).unwrap(), Duration::from_millis(200));
        assert!(stderr.contains("died (signal 11)"), "{}: {send:?}\n{stderr}", file_name(crash));
    }
}

/// A server that stops accepting once `STOP` exists: it listens, then exits (as a server that
/// forks into the background does, seen from the fork server).
const VANISHING: &str = r#"#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc != 5) return 2;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0) return 1;
    if (access(argv[4], F_OK) == 0) return 0;
    for (;;) {
        char buf[4096];
        const char *reply = "HTTP/1.0 200 OK\r\n\r\nhello";
        int c = accept(fd, NULL, NULL);
        if (c < 0) continue;
        if (read(c, buf, sizeof buf) > 0 && buf[0] == 'G') write(c, reply, strlen(reply));
        close(c);
    }
}
"#;

#[test]
fn a_campaign_stops_with_the_reason_when_runs_can_no_longer_be_driven() {
    let _guard = exclusive();
    let src = scratch_dir("vanishing-src");
    std::fs::write(src.join("server.c"), VANISHING).unwrap();
    std::fs::write(src.join("Makefile"), "server: server.c\n\t$(CC) $(CFLAGS) -o server server.c\n").unwrap();
    let stop = scratch_dir("vanishing-stop").join("stop");
    let out = scratch_dir("vanishing-out").join("out");
    let mut cmd = Command::new(fuzzer());
    cmd.arg("--src-dir").arg(&src).arg("-o").arg(&out).args(["-d", "120", "--sanitizer", "none", "--no-cmplog"]);
    cmd.arg(format!("--server-args=-p {{port}} -s {}", stop.display()));
    let mut campaign = spawn(&mut cmd);
    let stdout = collect(campaign.stdout.take().unwrap());
    let stderr = collect(campaign.stderr.take().unwrap());
    // Fuzzing, then the server stops taking connections.
    let started = std::time::Instant::now();
    while stat(&out.join("fuzz0"), "execs_done").unwrap_or(0) < 100 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::write(&stop, b"").unwrap();
    let status = wait_for(&mut campaign, Duration::from_secs(30));
    kill_group(&mut campaign);
    let (stdout, stderr) = (stdout.join().unwrap(), String::from_utf8_lossy(&stderr.join().unwrap()).into_owned());
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}\n{stderr}", String::from_utf8_lossy(&stdout));
    assert!(stderr.contains("could not drive the server"), "{stderr}");
    assert!(stderr.contains("exited after listening, before anything accepted"), "{stderr}");
    assert_eq!(processes_under(&out), Vec::<i32>::new(), "left running");
}

/// tests/servers/hostile: a correct server with switches that make life hard for a harness.
fn hostile_src() -> PathBuf {
    repo().join("tests/servers/hostile")
}

/// Each switch of the hostile server, the status line of its reply under `fuzzer run` (with the
/// default memory limit), and what the preload says on stderr, if anything.
const HOSTILE: [(&str, &str, &str); 8] = [
    ("closefds", "HTTP/1.0 200 OK", ""),
    ("noterm", "HTTP/1.0 200 OK", ""),
    ("reuseport", "HTTP/1.0 200 OK", ""),
    ("loud", "HTTP/1.0 200 OK", ""),
    // 1000 children per request, stopped at the preload's cap.
    ("forks", "HTTP/1.0 200 OK", "the server forked 256 processes in one run"),
    // 3 GiB: past the default memory limit, so malloc returns NULL.
    ("hog", "HTTP/1.0 503 Service Unavailable", ""),
    ("linger", "HTTP/1.0 200 OK", ""),
    // The child outlives the thread that forked it (the parent-death signal would kill it).
    ("threadfork", "HTTP/1.0 200 OK", ""),
];

#[test]
fn a_server_that_closes_every_descriptor_ignores_sigterm_forks_allocates_or_lingers_is_driven() {
    let server = make_with_gcc(&hostile_src(), "");
    for (switch, status, says) in HOSTILE {
        let port = free_port().to_string();
        let start = Instant::now();
        let run = run_with_input(
            Command::new(fuzzer()).args(["run", "--"]).arg(&server).args(["-p", &port, "-x", switch]),
            b"GET / HTTP/1.0\r\n\r\n",
            Duration::from_secs(20),
        );
        let tail = &run.stderr[run.stderr.len().saturating_sub(500)..];
        assert_eq!(run.code(), Some(0), "-x {switch}: {tail}");
        let stdout = run.stdout_text();
        let end = &stdout[stdout.len().saturating_sub(300)..];
        assert!(stdout.contains(&format!("{status}\r\n")), "-x {switch}: {end}");
        assert!(run.stderr.contains(says), "-x {switch}: {tail}");
        assert!(start.elapsed() < Duration::from_secs(5), "-x {switch} took {:?}", start.elapsed());
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(processes_under(server.parent().unwrap()), Vec::<i32>::new(), "left running");
}

/// In an ASan build (which reserves terabytes of address space) the memory limit is ASan's.
#[test]
fn the_memory_limit_holds_in_an_asan_build_and_can_be_raised() {
    let server = make_with_gcc(&hostile_src(), "-fsanitize=address");
    for (limit, status) in [("2048", "HTTP/1.0 503"), ("4096", "HTTP/1.0 200 OK")] {
        let port = free_port().to_string();
        let run = run_with_input(
            Command::new(fuzzer()).args(["run", "-m", limit, "--"]).arg(&server).args(["-p", &port, "-x", "hog"]),
            b"GET / HTTP/1.0\r\n\r\n",
            Duration::from_secs(30),
        );
        assert_eq!(run.code(), Some(0), "-m {limit}: {}", run.stderr);
        assert!(run.stdout_text().starts_with(status), "-m {limit}: {}", run.stdout_text());
    }
}

#[test]
fn a_campaign_on_a_server_that_closes_every_descriptor_ignores_sigterm_and_is_loud_runs_cleanly() {
    let _guard = exclusive();
    let out = scratch_dir("hostile-out").join("out");
    // Not reuseport: its sibling listener is among what closefds closes after each accept.
    let switches: Vec<String> =
        ["closefds", "noterm", "loud", "hog", "linger"].iter().map(|s| format!("-x {s}")).collect();
    let run = run_with_input(
        Command::new(fuzzer())
            .arg("--src-dir")
            .arg(hostile_src())
            .arg("-o")
            .arg(&out)
            .args(["-d", "10", "--sanitizer", "none", "--no-cmplog"])
            .arg(format!("--server-args=-p {{port}} {}", switches.join(" "))),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    assert!(stat(&out.join("fuzz0"), "execs_done").unwrap() > 200, "{}", run.stdout_text());
    assert_eq!(findings(&out.join("fuzz0/crashes")), Vec::<PathBuf>::new());
    assert_eq!(findings(&out.join("fuzz0/hangs")), Vec::<PathBuf>::new());
    assert_eq!(processes_under(&out), Vec::<i32>::new(), "left running");
}

/// Campaigns on servers whose runs fork: without bound (stopped by the cap), and from a handler
/// thread whose child outlives it, where a request with HANG times out with that child waiting
/// forever: every run's processes end with it (the run's process group), none accumulate.
#[test]
fn campaigns_on_servers_that_fork_without_bound_or_from_threads_leave_nothing_behind() {
    let _guard = exclusive();
    let seeds = scratch_dir("fork-seeds");
    std::fs::write(seeds.join("get"), "GET / HTTP/1.0\r\n\r\n").unwrap();
    std::fs::write(seeds.join("hang"), "GET /HANG HTTP/1.0\r\n\r\n").unwrap();
    for (switch, hangs) in [("forks", false), ("threadfork", true)] {
        let out = scratch_dir("fork-out").join(switch);
        let run = run_with_input(
            Command::new(fuzzer())
                .arg("--src-dir")
                .arg(hostile_src())
                .arg("-o")
                .arg(&out)
                .arg("--seeds")
                .arg(&seeds)
                .args(["-d", "10", "--sanitizer", "none", "--no-cmplog", "-t", "300", "--hang-timeout", "500"])
                .arg(format!("--server-args=-p {{port}} -x {switch}")),
            b"",
            Duration::from_secs(120),
        );
        assert_eq!(run.code(), Some(0), "-x {switch}: {}\n{}", run.stdout_text(), run.stderr);
        let execs = stat(&out.join("fuzz0"), "execs_done").unwrap_or(0);
        assert!(execs > 20, "-x {switch}: {execs} execs\n{}\n{}", run.stdout_text(), run.stderr);
        assert_eq!(findings(&out.join("fuzz0/crashes")), Vec::<PathBuf>::new(), "-x {switch}");
        // The HANG seed times out (and is left out, as AFL++ leaves it out); so do its mutants.
        let timed_out =
            run.stdout_text().contains("hang (hang: timed out)") || !findings(&out.join("fuzz0/hangs")).is_empty();
        assert_eq!(timed_out, hangs, "-x {switch}: {}", run.stdout_text());
        assert_eq!(processes_under(&out), Vec::<i32>::new(), "-x {switch}: left running");
    }
}

/// tests/servers/daemon: an iterative server that goes into the background (`-d MODE`); planted
/// bug `no-version` (a request line without a version) crashes it.
fn daemon_src() -> PathBuf {
    repo().join("tests/servers/daemon")
}

const DAEMON_MODES: [&str; 4] = ["fork", "libc", "late", "latefork"];
const DAEMON_CRASH: &[u8] = b"GET /index.html\r\n\r\n";

#[test]
fn a_server_that_goes_into_the_background_is_followed_and_its_crash_is_the_runs() {
    let server = make_with_gcc(&daemon_src(), "");
    let dir = server.parent().unwrap();
    for mode in DAEMON_MODES {
        let ok = run(&server, &["-d", mode], b"GET /index.html HTTP/1.0\r\n\r\n");
        assert_eq!(ok.code(), Some(0), "-d {mode}: {}", ok.stderr);
        assert!(ok.stderr.contains("answered and closed the connection"), "-d {mode}: {}", ok.stderr);
        let crash = run(&server, &["-d", mode], DAEMON_CRASH);
        assert_eq!(crash.code(), Some(128 + libc::SIGSEGV), "-d {mode}: {}", crash.stderr);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(processes_under(dir), Vec::<i32>::new(), "-d {mode}: left running");
    }
}

#[test]
fn a_campaign_on_a_daemon_finds_its_crash_and_the_file_replays_against_the_real_daemon() {
    let _guard = exclusive();
    // Before listening (the fork server runs in the daemon) and after (each run's daemon).
    for mode in ["fork", "latefork"] {
        let out = scratch_dir(&format!("daemon-out-{mode}")).join("out");
        let run = run_with_input(
            Command::new(fuzzer()).arg("--src-dir").arg(daemon_src()).arg("-o").arg(&out).args([
                "--stop-on-crash",
                "-d",
                "90",
                "--sanitizer",
                "none",
                "--no-cmplog",
                &format!("--server-args=-p {{port}} -R {{root}} -d {mode}"),
            ]),
            b"",
            Duration::from_secs(180),
        );
        assert_eq!(run.code(), Some(0), "-d {mode}: {}\n{}", run.stdout_text(), run.stderr);
        let crashes = findings(&out.join("fuzz0/crashes"));
        assert!(!crashes.is_empty(), "-d {mode}: no crash found:\n{}", run.stdout_text());
        assert!(crashes.iter().all(|c| file_name(c).contains("sig:11")), "-d {mode}: {crashes:?}");
        assert_eq!(processes_under(&out), Vec::<i32>::new(), "-d {mode}: left running");

        // Replayed with `fuzzer send` against the server started as a student would: it goes
        // into the background, and the file kills it.
        let server = make_with_gcc(&daemon_src(), "");
        let pidfile = server.with_file_name("pid");
        let port = free_port();
        let started = Command::new(&server)
            .args(["-p", &port.to_string(), "-R"])
            .arg(www())
            .args(["-d", mode, "-P"])
            .arg(&pidfile)
            .status()
            .unwrap();
        assert!(started.success());
        assert!(wait_listening(port, Duration::from_secs(5)));
        let read_pid = || std::fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok());
        let started = std::time::Instant::now();
        while read_pid().is_none() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = read_pid().expect("no pid file");
        let send = run_with_input(
            Command::new(fuzzer()).args(["send", "127.0.0.1", &port.to_string(), "--timeout", "3"]),
            &std::fs::read(&crashes[0]).unwrap(),
            Duration::from_secs(10),
        );
        std::thread::sleep(Duration::from_millis(300));
        // Running, not a zombie (nobody may reap an orphan in a container).
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let alive = stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'));
        if alive {
            // SAFETY: ending the daemon this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        assert!(!alive, "-d {mode}: {} did not kill the daemon: {send:?}", file_name(&crashes[0]));
    }
}

/// tests/servers/htdocs: serves `./htdocs` of its working directory; planted bug
/// `range-no-dash` needs a file it finds there.
fn htdocs_src() -> PathBuf {
    repo().join("tests/servers/htdocs")
}

#[test]
fn a_server_that_serves_its_working_directory_is_fuzzed_in_a_copy_of_its_folder_from_anywhere() {
    let _guard = exclusive();
    let elsewhere = scratch_dir("htdocs-elsewhere");
    let out = elsewhere.join("out");
    let run = run_with_input(
        Command::new(fuzzer()).current_dir(&elsewhere).arg("--src-dir").arg(htdocs_src()).args([
            "-o",
            "out",
            "--stop-on-crash",
            "-d",
            "90",
            "--sanitizer",
            "none",
            "--no-cmplog",
            "--server-args=-p {port}",
        ]),
        b"",
        Duration::from_secs(180),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let crashes = findings(&out.join("fuzz0/crashes"));
    assert!(!crashes.is_empty(), "no crash found:\n{}", run.stdout_text());
    assert_eq!(processes_under(&out), Vec::<i32>::new(), "left running");
    // Nothing was written into the source folder.
    assert!(!htdocs_src().join("server").exists() && !htdocs_src().join("out").exists());

    // Replayed against the server started in its own folder, as the student would.
    let server = make_with_gcc(&htdocs_src(), "");
    let port = free_port();
    let mut cmd = Command::new(&server);
    cmd.current_dir(server.parent().unwrap()).args(["-p", &port.to_string()]);
    let (send, status, _) = send_to(&mut cmd, port, &std::fs::read(&crashes[0]).unwrap(), Duration::from_secs(3));
    let signal = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
    assert_eq!(signal, Some(libc::SIGSEGV), "{}: {send:?}", file_name(&crashes[0]));

    // Given another working folder, it runs there: one without htdocs/ finds nothing to crash on.
    let empty = scratch_dir("htdocs-empty-cwd");
    let out = elsewhere.join("out-empty");
    let run = run_with_input(
        Command::new(fuzzer())
            .current_dir(&elsewhere)
            .arg("--src-dir")
            .arg(htdocs_src())
            .args(["-o", "out-empty", "-d", "5", "--sanitizer", "none", "--no-cmplog", "--server-args=-p {port}"])
            .arg("--cwd")
            .arg(&empty),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    assert!(out.join("cwd").is_dir(), "no copy of --cwd");
    assert_eq!(findings(&out.join("fuzz0/crashes")), Vec::<PathBuf>::new());
}

/// Whether this machine lets us make a network namespace (as the fuzzer checks).
fn netns_allowed() -> bool {
    // SAFETY: the child only makes system calls before it exits; the parent waits for it.
    unsafe {
        match libc::fork() {
            0 => {
                let ok = libc::unshare(libc::CLONE_NEWNET) == 0
                    || libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0;
                libc::_exit(i32::from(!ok))
            }
            child => {
                let mut status = 0;
                libc::waitpid(child, &mut status, 0) == child
                    && libc::WIFEXITED(status)
                    && libc::WEXITSTATUS(status) == 0
            }
        }
    }
}

#[test]
fn a_server_with_a_fixed_port_is_fuzzed_on_two_cores_in_network_namespaces() {
    if !netns_allowed() {
        skip("this machine allows no network namespaces (the fixed-port error is tested in fuzz.rs)", None);
        return;
    }
    let _guard = exclusive();
    let out = scratch_dir("fixed-port-out").join("out");
    // Every copy (two cores, each with its CmpLog tracer) on the same port, taken on the host too.
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let run = run_with_input(
        Command::new(fuzzer())
            .arg("--src-dir")
            .arg(hostile_src())
            .arg("-o")
            .arg(&out)
            .args(["-d", "10", "-j", "2", "--sanitizer", "none"])
            .arg(format!("--server-args=-p {port}")),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    for client in ["fuzz0", "fuzz1"] {
        assert!(stat(&out.join(client), "execs_done").unwrap_or(0) > 100, "{client}: {}", run.stdout_text());
        assert_eq!(findings(&out.join(client).join("crashes")), Vec::<PathBuf>::new());
    }
    assert_eq!(processes_under(&out), Vec::<i32>::new(), "left running");
}

/// tests/servers/addrconfig: binds through getaddrinfo(NULL, PORT) with AI_PASSIVE |
/// AI_ADDRCONFIG and AF_INET, which glibc fails where 127.0.0.1 is the only IPv4 address (a
/// network namespace with loopback only); `-i IFNAME` needs that interface. Planted bug
/// `long-header-value`: a header value of 64 bytes or more.
fn addrconfig_src() -> PathBuf {
    repo().join("tests/servers/addrconfig")
}

fn addrconfig_crash() -> Vec<u8> {
    format!("GET / HTTP/1.0\r\nHost: {}\r\n\r\n", "a".repeat(80)).into_bytes()
}

#[test]
fn an_addrconfig_server_starts_in_its_netns_as_on_the_host() {
    if !netns_allowed() {
        skip("this machine allows no network namespaces", None);
        return;
    }
    let server = make_with_gcc(&addrconfig_src(), "");
    // The premise: in a namespace with loopback only, and without the preload, glibc refuses
    // the server's lookup.
    let mut bare = Command::new(&server);
    bare.args(["-p", &free_port().to_string(), "-R"]).arg(www());
    // SAFETY: unshare is a system call, allowed between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut bare, || {
            if libc::unshare(libc::CLONE_NEWNET) == 0 || libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let bare = run_with_input(&mut bare, b"", Duration::from_secs(10));
    assert_eq!(bare.code(), Some(1), "{bare:?}");
    assert!(bare.stderr.contains("getaddrinfo error: Name or service not known"), "{}", bare.stderr);

    // Under the preload in its namespace, it starts and serves.
    let port = free_port().to_string();
    let run = run_with_input(
        Command::new(fuzzer())
            .env("SOCKFUZZ_NETNS", "1")
            .args(["run", "--"])
            .arg(&server)
            .args(["-p", &port, "-R"])
            .arg(www()),
        b"GET / HTTP/1.0\r\n\r\n",
        Duration::from_secs(20),
    );
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(run.stdout_text().starts_with("HTTP/1.0 200 OK"), "{}", run.stdout_text());
    let index = std::fs::read_to_string(www().join("index.html")).unwrap();
    assert!(run.stdout_text().ends_with(&index), "{}", run.stdout_text());
    // The planted bug is reached there too.
    let crash = run_with_input(
        Command::new(fuzzer())
            .env("SOCKFUZZ_NETNS", "1")
            .args(["run", "-q", "--"])
            .arg(&server)
            .args(["-p", &port, "-R"])
            .arg(www()),
        &addrconfig_crash(),
        Duration::from_secs(20),
    );
    assert_eq!(crash.code(), Some(128 + libc::SIGSEGV), "{crash:?}");
}

#[test]
fn a_campaign_on_an_addrconfig_server_in_netns_finds_its_crash_and_the_file_replays() {
    if !netns_allowed() {
        skip("this machine allows no network namespaces", None);
        return;
    }
    let _guard = exclusive();
    let out = scratch_dir("addrconfig-out").join("out");
    let run = run_with_input(
        Command::new(fuzzer())
            .env("SOCKFUZZ_NETNS", "1")
            .arg("--src-dir")
            .arg(addrconfig_src())
            .arg("-o")
            .arg(&out)
            .args(["--stop-on-crash", "-d", "20", "--sanitizer", "none", "--no-cmplog", "--no-triage"]),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    // Fuzzed in its namespace: no fall-back to the host's network.
    assert!(!run.stdout_text().contains("could not start inside"), "{}", run.stdout_text());
    let crashes = findings(&out.join("fuzz0/crashes"));
    assert!(!crashes.is_empty(), "no crash found:\n{}", run.stdout_text());
    assert_eq!(processes_under(&out), Vec::<i32>::new(), "left running");

    // Replayed with `fuzzer send` against the server started normally: it dies of it.
    let server = make_with_gcc(&addrconfig_src(), "");
    let port = free_port();
    let mut cmd = Command::new(&server);
    cmd.args(["-p", &port.to_string(), "-R"]).arg(www());
    let (send, status, _) = send_to(&mut cmd, port, &std::fs::read(&crashes[0]).unwrap(), Duration::from_secs(3));
    let signal = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
    assert_eq!(signal, Some(libc::SIGSEGV), "{}: {send:?}", file_name(&crashes[0]));
}

/// A network interface of this machine other than loopback, which a network namespace of the
/// server's own does not have.
fn host_interface() -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    names.into_iter().next()
}

#[test]
fn a_server_that_cannot_start_in_its_netns_is_fuzzed_on_the_hosts_network_with_a_line_saying_why() {
    if !netns_allowed() {
        skip("this machine allows no network namespaces", None);
        return;
    }
    let Some(interface) = host_interface() else {
        skip("this machine has no network interface but loopback", None);
        return;
    };
    let _guard = exclusive();
    let out = scratch_dir("addrconfig-fallback").join("out");
    let run = run_with_input(
        Command::new(fuzzer())
            .env("SOCKFUZZ_NETNS", "1")
            .arg("--src-dir")
            .arg(addrconfig_src())
            .arg("-o")
            .arg(&out)
            .args(["-d", "5", "--sanitizer", "none", "--no-cmplog", "--no-triage"])
            .arg(format!("--server-args=-p {{port}} -R {{root}} -i {interface}")),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let line = format!(
        "[check] the server could not start inside a private network namespace (it said `no network interface \
         named {interface}`), so it is fuzzed on the host's loopback"
    );
    assert!(run.stdout_text().contains(&line), "{}", run.stdout_text());
    // The whole campaign ran there: every run was driven, none was refused.
    assert!(stat(&out.join("fuzz0"), "execs_done").unwrap_or(0) > 100, "{}", run.stdout_text());
    assert!(!findings(&out.join("fuzz0/crashes")).is_empty(), "no crash found:\n{}", run.stdout_text());
    assert_eq!(processes_under(&out), Vec::<i32>::new(), "left running");
    // A later `fuzzer triage` replays on the host's network too (targets.json keeps it) and
    // places the bug. (A value of many kilobytes smashes the stack past every frame: such a
    // crash of the same bug has no place, and a group of its own.)
    let groups = triage(&out);
    assert!(groups.iter().all(|g| g["kind"] == "SIGSEGV"), "{groups:?}");
    assert!(groups.iter().any(|g| g["location"].as_str().is_some_and(|l| l.starts_with("keeps_alive"))), "{groups:?}");
}

/// A campaign on the hostile server with `switch`, for `seconds`, without ASan (so that triage
/// replays the plain build), with extra arguments.
fn crash_campaign(out: &Path, switch: &str, seconds: &str, extra: &[&str]) -> Run {
    let run = run_with_input(
        Command::new(fuzzer())
            .arg("--src-dir")
            .arg(hostile_src())
            .arg("-o")
            .arg(out)
            .args(["-d", seconds, "--sanitizer", "none", "--no-cmplog", "--no-triage"])
            .args(extra)
            .arg(format!("--server-args=-p {{port}} -x {switch}")),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    run
}

/// `fuzzer triage OUT --runs 3`'s groups, from `OUT/triage.json`.
fn triage(out: &Path) -> Vec<serde_json::Value> {
    triage_with(out, &[])
}

/// [`triage`] with more arguments.
fn triage_with(out: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let run = run_with_input(
        Command::new(fuzzer()).arg("triage").arg(out).args(["--runs", "3"]).args(args),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("triage.json")).unwrap()).unwrap();
    json["groups"].as_array().unwrap().clone()
}

/// A crash with one path (`-x crash`: a DEL byte in the request): a resumed campaign that hits
/// it again does not save it again, as the crashes' map is kept on disk (without that file, the
/// same resumed campaign saves it again); triage of the plain build places it with gdb. One
/// connection per test case, as above.
#[test]
fn a_resumed_campaign_does_not_save_a_known_crash_again() {
    let _guard = exclusive();
    let out = scratch_dir("known-crash").join("out");
    crash_campaign(&out, "crash", "8", &["--single-connection"]);
    let crashes = findings(&out.join("fuzz0/crashes"));
    assert!(!crashes.is_empty(), "the DEL-byte crash was not found");
    crash_campaign(&out, "crash", "8", &["--resume", "--single-connection"]);
    assert_eq!(findings(&out.join("fuzz0/crashes")), crashes, "a resumed campaign saved a known crash again");
    std::fs::remove_file(out.join("fuzz0/.seen-crashes")).unwrap();
    crash_campaign(&out, "crash", "8", &["--resume", "--single-connection"]);
    assert!(findings(&out.join("fuzz0/crashes")).len() > crashes.len(), "the control run did not hit the crash again");

    let groups = triage(&out);
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["kind"], "SIGSEGV", "{groups:?}");
    let shortest = std::fs::read(out.join(groups[0]["minimized"].as_str().unwrap())).unwrap();
    assert_eq!(shortest, b"\x7f", "not cut down to the one byte that crashes it");
    if require("gdb") {
        let location = groups[0]["location"].as_str().unwrap();
        assert!(location.starts_with("crash_here (server.c:"), "{groups:?}");
        let report = std::fs::read_to_string(out.join("triage/report.md")).unwrap();
        assert!(report.contains("*null = request[0];"), "no source excerpt:\n{report}");
    }

    // In proportion (`--seconds`, as after a campaign): the first three files of a group that
    // reproduces are run `--runs` times, the others once.
    let crashes = findings(&out.join("fuzz0/crashes"));
    for i in 0..4 {
        std::fs::copy(&crashes[0], out.join(format!("fuzz0/crashes/id:{:06},copy", 1000 + i))).unwrap();
    }
    let n = crashes.len() as u64 + 4;
    let groups = triage_with(&out, &["--seconds", "60"]);
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["runs"].as_u64(), Some(3 * 3 + (n - 3)), "{n} files: {groups:?}");
    assert_eq!(groups[0]["reproduced"], groups[0]["runs"], "{groups:?}");
}

/// A crash that happens once (`-x once`) and never again is kept, as a flaky crash, by a
/// campaign of one test case per server (persistent mode would run it again in a fresh server
/// first, and drop it as persistent-only).
#[test]
fn a_crash_that_does_not_reproduce_is_reported_as_flaky() {
    let _guard = exclusive();
    let out = scratch_dir("flaky-crash").join("out");
    crash_campaign(&out, "once", "8", &["--no-persistent"]);
    let crashes = findings(&out.join("fuzz0/crashes"));
    assert_eq!(crashes.len(), 1, "the one crash was not found");
    let groups = triage(&out);
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["kind"], "flaky crash (did not reproduce)", "{groups:?}");
    assert_eq!((groups[0]["reproduced"].as_u64(), groups[0]["runs"].as_u64()), (Some(0), Some(3)));
    let report = std::fs::read_to_string(out.join("triage/report.md")).unwrap();
    assert!(report.contains("flaky crash"), "{report}");
}

/// A client's persistent-mode figures (`fuzzK/persistent_stats`): the number under `key`.
fn persistent_stat(out: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(out.join("fuzz0/persistent_stats")).ok()?;
    stat_value(&text, key)?.parse().ok()
}

/// Persistent mode (the default): the hostile server's `-x third` crashes on the third request
/// one process reads, which a test case of one connection reaches only in a server reused for
/// many test cases. No such crash is saved: each was run again in a fresh server, where it did
/// not happen. (A test case of three connections or more crashes it in a fresh server too, and
/// is rightly saved.)
#[test]
fn a_crash_that_needs_two_earlier_requests_is_not_saved() {
    let _guard = exclusive();
    let out = scratch_dir("persistent-third").join("out");
    crash_campaign(&out, "third", "5", &[]);
    let crashes = findings(&out.join("fuzz0/crashes"));
    let one_connection: Vec<_> =
        crashes.iter().filter(|c| !contract::comux::is_comux(&std::fs::read(c).unwrap())).collect();
    assert!(one_connection.is_empty(), "a crash that needs two earlier requests was saved: {one_connection:?}");
    let only = persistent_stat(&out, "persistent_only").unwrap_or(0);
    assert!(only >= 3, "the reused servers' crashes were not seen and set aside ({only})");
}

/// A planted crash (`-x crash`: a DEL byte) found in persistent mode is saved once, and its file
/// crashes the server started as a student would, through `fuzzer send`. One connection per test
/// case: after another connection's request the same crash has more coverage, a new one by
/// AFL++'s rule.
#[test]
fn a_crash_found_in_persistent_mode_is_saved_once_and_replays() {
    let _guard = exclusive();
    let out = scratch_dir("persistent-crash").join("out");
    crash_campaign(&out, "crash", "8", &["--single-connection"]);
    let reused = persistent_stat(&out, "reused_runs").unwrap_or(0);
    assert!(reused >= 100, "the campaign did not run persistently ({reused} runs in a reused server)");
    let crashes = findings(&out.join("fuzz0/crashes"));
    assert_eq!(crashes.len(), 1, "{crashes:?}");
    assert!(file_name(&crashes[0]).contains("sig:11"), "{crashes:?}");

    let server = make_with_gcc(&hostile_src(), "");
    let port = free_port();
    let mut cmd = Command::new(&server);
    cmd.args(["-p", &port.to_string(), "-x", "crash"]);
    let (send, status, _) = send_to(&mut cmd, port, &std::fs::read(&crashes[0]).unwrap(), Duration::from_secs(5));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGSEGV), "{send:?}");
}

/// A server that serves one connection per process (`-x breaks`: it closes its listening socket
/// after the first) cannot be reused: the fuzzer says so and goes back to one test case per
/// server on its own, and finds nothing to report.
#[test]
fn persistent_mode_falls_back_on_a_server_that_breaks_after_one_connection() {
    let _guard = exclusive();
    let out = scratch_dir("persistent-breaks").join("out");
    let run = crash_campaign(&out, "breaks", "6", &[]);
    assert!(run.stdout_text().contains("one test case per process from now on"), "{}", run.stdout_text());
    let stats = std::fs::read_to_string(out.join("fuzz0/persistent_stats")).unwrap();
    assert_eq!(stat_value(&stats, "mode"), Some("fork (fallback)"), "{stats}");
    assert_eq!(findings(&out.join("fuzz0/crashes")), Vec::<PathBuf>::new());
    assert_eq!(findings(&out.join("fuzz0/hangs")), Vec::<PathBuf>::new());
    let execs = stat(&out.join("fuzz0"), "execs_done").unwrap_or(0);
    assert!(execs > 1000, "only {execs} runs after the fallback");
}
