//! Hangs cost milliseconds, not seconds: the idle verdict, AFL++'s timeout rule (a hang is
//! saved only when a patient re-run hangs too), the spin verdict, seeds that hang, `-d` as a
//! deadline, and test cases in shared memory. On the sample pserv's switches (`-x leak`,
//! `-x spin`, `-x scan-loop`, `-x close-stdin`, `-k MS`; tests/pserv/README.md).

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// An unknown method: `-x leak` answers 501 and leaves the connection open (not in `fork`).
const UNKNOWN_METHOD: &[u8] = b"GXT / HTTP/1.0\r\n\r\n";
const GET: &[u8] = b"GET /index.html HTTP/1.0\r\n\r\n";

/// `fuzzer run` of the sample server (`-s` and `server_args`) on `input`.
fn run_pserv(server_args: &[&str], input: &[u8]) -> Run {
    let port = free_port().to_string();
    let (server, www) = (pserv().to_string_lossy(), www());
    let www = www.to_string_lossy();
    let args = ["-q", "--timeout", "10", "--", &server, "-p", &port, "-R", &www, "-s"];
    fuzzer_run(&[&args[..], server_args].concat(), input, Duration::from_secs(30))
}

#[test]
fn the_idle_verdict_names_a_connection_left_open_in_every_model() {
    for model in MODELS {
        // The fork model's parent leaks every connection it hands to a child; the others leak
        // the connection of a 501.
        let (left_open, closed) = if model == "fork" { (GET, UNKNOWN_METHOD) } else { (UNKNOWN_METHOD, GET) };
        let run = run_pserv(&["-m", model, "-x", "leak"], left_open);
        assert_eq!(run.code(), Some(124), "{model}: {run:?}");
        assert!(run.stderr.contains("[run] the server left the connection open"), "{model}: {}", run.stderr);
        let run = run_pserv(&["-m", model, "-x", "leak"], closed);
        // The fork model's child shuts the connection down, so it ends, but the parent still
        // holds its copy: a descriptor leak (tests/leaks.rs).
        let closed_code = if model == "fork" { 128 + SIG_FD_LEAK } else { 0 };
        assert_eq!(run.code(), Some(closed_code), "{model}, closed: {run:?}");
        let run = run_pserv(&["-m", model], left_open);
        assert_eq!(run.code(), Some(0), "{model}, no leak: {run:?}");
    }
}

/// The preload's two idle verdicts, set up as the fuzzer does (`SOCKFUZZ_IDLE=0`): "stuck" when
/// nothing could ever wake the server (the fuzzer saves that hang without a patient re-run),
/// "idle" when a timeout or a timer of the server's own might still end its wait.
#[test]
fn a_server_nothing_can_wake_is_told_from_one_with_a_timer() {
    let verdict = |model: &str, extra: &[&str], input: &[u8]| {
        let mut cmd = preloaded(pserv(), free_port(), model);
        cmd.args(extra).env("SOCKFUZZ_IDLE", "0").env("SOCKFUZZ_OUTPUT", "0");
        run_with_input(&mut cmd, input, Duration::from_secs(10)).code()
    };
    for model in ["iterative", "thread", "pool", "epoll"] {
        assert_eq!(verdict(model, &["-x", "leak"], UNKNOWN_METHOD), Some(EXIT_STUCK), "{model}");
        assert_eq!(verdict(model, &["-x", "leak,alarm"], UNKNOWN_METHOD), Some(EXIT_IDLE), "{model}, alarm()");
        assert_eq!(verdict(model, &["-k", "300"], GET), Some(EXIT_IDLE), "{model}, in poll() for 300 ms");
    }
    // The fork model's parent reaps its children in a SIGCHLD handler, which may run just after
    // the verdict: until then a child is left, and the verdict is the cautious one.
    assert!(matches!(verdict("fork", &["-x", "leak"], GET), Some(EXIT_STUCK | EXIT_IDLE)));
}

#[test]
fn a_timer_that_closes_the_connection_later_is_no_idle_verdict_for_fuzzer_run() {
    // 300 ms in poll() with the connection open: idle, but not for the grace period.
    for model in ["iterative", "thread", "epoll"] {
        let run = run_pserv(&["-m", model, "-k", "300"], GET);
        assert_eq!(run.code(), Some(0), "{model}: {run:?}");
    }
}

/// The sample server built with fuzzer-cc (no ASan build), once per run of the tests.
fn instrumented() -> &'static Path {
    static SERVER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let (build, out) = fuzzer_build(&pserv_copy(), &["--sanitizer", "none"], Duration::from_secs(300));
        assert_eq!(build.code(), Some(0), "{build:?}");
        out.join("server-fuzz")
    })
}

struct Campaign {
    out: PathBuf,
    run: Run,
    took: Duration,
}

/// A one-core campaign of `secs` seconds on the instrumented pserv with `server_args` added.
fn campaign(name: &str, secs: u32, server_args: &str, extra: &[&str]) -> Campaign {
    let server = instrumented();
    let _guard = exclusive();
    let out = scratch_dir(name).join("out");
    let started = Instant::now();
    let run = run_with_input(
        Command::new(fuzzer())
            .arg("--server")
            .arg(server)
            .arg("-o")
            .arg(&out)
            // The verdicts are under test here, not what triage makes of the hangs.
            .args(["-d", &secs.to_string(), "--no-cmplog", "--no-triage"])
            .arg(format!("--server-args=-p {{port}} -R {{root}} -s {server_args}"))
            .args(extra),
        b"",
        Duration::from_secs(u64::from(secs) + 120),
    );
    let took = started.elapsed();
    assert_eq!(run.code(), Some(0), "fuzzer failed: {}\n{}", run.stdout_text(), run.stderr);
    Campaign { out, run, took }
}

fn seeds(name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = scratch_dir(name);
    for (file, bytes) in files {
        std::fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

#[test]
fn a_left_open_server_is_fuzzed_at_speed_and_its_hangs_are_saved_as_left_open() {
    let seeds = seeds("leak-seeds", &[("get.txt", GET), ("unknown.txt", UNKNOWN_METHOD)]);
    let c = campaign("leak", 15, "-m thread -x leak", &["--no-grammar", "--seeds", seeds.to_str().unwrap()]);
    // The seed that leaves the connection open is named and left out of the queue...
    assert!(
        c.run.stdout_text().contains(
            "[seeds] left out 1 seed(s) that crash or hang the server: unknown.txt (hang: left the connection open)"
        ),
        "{}",
        c.run.stdout_text()
    );
    // ...so the exec timeout is calibrated on the one that closes, not the hang timeout.
    let timeout = stat(&c.out.join("fuzz0"), "exec_timeout").unwrap();
    assert!(timeout < 1000, "exec_timeout {timeout}");
    let hangs = findings(&c.out.join("fuzz0/hangs"));
    assert!(!hangs.is_empty(), "no hang saved");
    let kinds = std::fs::read_to_string(c.out.join("fuzz0/hangs.tsv")).unwrap();
    for hang in &hangs {
        let line = kinds.lines().find(|l| l.starts_with(&format!("{}\t", file_name(hang))));
        let kind = line.and_then(|l| l.split('\t').nth(1));
        assert!(matches!(kind, Some("left-open" | "timeout" | "eof-spin")), "{hang:?}: {kinds}");
    }
    assert!(kinds.lines().any(|l| l.ends_with("\tleft-open")), "{kinds}");
    assert!(c.run.stdout_text().contains("the server left the connection open"), "{}", c.run.stdout_text());
    // Every saved hang really leaves the connection open under `fuzzer run`.
    for hang in hangs.iter().take(3) {
        let input = std::fs::read(hang).unwrap();
        let run = run_pserv(&["-m", "thread", "-x", "leak"], &input);
        assert_eq!(run.code(), Some(124), "{hang:?}: {run:?}");
    }
}

#[test]
fn a_server_that_closes_after_a_timer_floods_no_hangs() {
    // Every run sits idle for 300 ms in poll() before the server closes: an idle verdict at
    // once, then patient re-runs of the new candidates, which end normally.
    let c = campaign("timer", 15, "-m iterative -k 300", &[]);
    // The planted body-eof-hang (an EOF spin, a hang at once) may be found; nothing else.
    let kinds = std::fs::read_to_string(c.out.join("fuzz0/hangs.tsv")).unwrap_or_default();
    let hangs = findings(&c.out.join("fuzz0/hangs"));
    assert_eq!(kinds.lines().count(), hangs.len(), "{kinds}");
    assert!(kinds.lines().all(|l| l.ends_with("\teof-spin")), "saved as hangs: {kinds}");
    assert!(stat(&c.out.join("fuzz0"), "execs_done").unwrap() > 100);
}

#[test]
fn the_duration_is_a_deadline_even_when_every_run_hangs_and_so_is_triages() {
    // Only the start-up check's request is answered; every other run spins until killed.
    let seeds = seeds("spin-seeds", &[("get.txt", GET), ("root.txt", b"GET / HTTP/1.0\r\n\r\n")]);
    let c = campaign("spin", 20, "-m thread -x spin", &["--no-grammar", "--seeds", seeds.to_str().unwrap()]);
    assert!(c.took < Duration::from_secs(30), "-d 20 took {:?}", c.took);
    assert!(c.run.stdout_text().contains("root.txt (hang: timed out)"), "{}", c.run.stdout_text());

    // Triage keeps to its time too: forty hang files (the campaign's, copied), each replay of
    // which spins for the whole run limit (2 s), in 8 s. Every file is still in a group: those
    // it had no time for in a group that says so.
    let hangs = findings(&c.out.join("fuzz0/hangs"));
    assert!(!hangs.is_empty(), "no hang saved");
    for i in 0..40 {
        let copy = c.out.join(format!("fuzz0/hangs/id:{:06},copy", 1000 + i));
        std::fs::copy(&hangs[i % hangs.len()], copy).unwrap();
    }
    let started = Instant::now();
    let run = run_with_input(
        Command::new(fuzzer()).arg("triage").arg(&c.out).args(["--seconds", "8"]),
        b"",
        Duration::from_secs(120),
    );
    let took = started.elapsed();
    let stdout = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{stdout}\n{}", run.stderr);
    // The bound, a run under way (2 s) and its gdb look at the hang, and start-up.
    assert!(took < Duration::from_secs(14), "triage --seconds 8 took {took:?}:\n{stdout}");
    assert!(stdout.contains("file(s) were replayed: fuzzer triage"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(c.out.join("triage.json")).unwrap()).unwrap();
    let groups = json["groups"].as_array().unwrap();
    let files = |g: &serde_json::Value| g["files"].as_array().unwrap().len();
    let saved = findings(&c.out.join("fuzz0/crashes")).len() + hangs.len() + 40;
    assert_eq!(groups.iter().map(files).sum::<usize>(), saved, "{groups:?}");
    let left = groups.iter().find(|g| g["kind"].as_str().unwrap().starts_with("not replayed")).expect("none left");
    assert!(files(left) > 0 && left["runs"] == 0, "{left}");
    assert!(groups.iter().any(|g| g["kind"] == "hang" && g["reproduced"].as_u64().unwrap() > 0), "{groups:?}");
}

#[test]
fn a_parser_loop_that_never_ends_is_saved_as_a_spin_and_replays_as_a_hang() {
    // Well-formed headers: the name scan loops on any other byte before the colon.
    let headers = b"GET /index.html HTTP/1.0\r\nHost: a\r\nUser-Agent: b\r\n\r\n";
    let seeds = seeds("scan-seeds", &[("headers.txt", headers), ("get.txt", GET)]);
    let c = campaign("scan-loop", 15, "-m epoll -x scan-loop", &["--no-grammar", "--seeds", seeds.to_str().unwrap()]);
    let kinds = std::fs::read_to_string(c.out.join("fuzz0/hangs.tsv")).unwrap_or_default();
    let spin = kinds.lines().find_map(|l| l.strip_suffix("\tspin")).unwrap_or_else(|| panic!("no spin: {kinds}"));
    let input = std::fs::read(c.out.join("fuzz0/hangs").join(spin)).unwrap();
    let run = run_pserv(&["-m", "epoll", "-x", "scan-loop"], &input);
    assert_eq!(run.code(), Some(124), "{spin} does not hang: {run:?}");
    let summary = c.run.stdout_text();
    assert!(summary.contains("of these hangs a server thread spun"), "{summary}");
}

#[test]
fn test_cases_reach_a_server_that_closed_stdin_through_shared_memory() {
    // fd 0 of this server is /dev/null: a test case on stdin would arrive empty every run.
    let c = campaign("close-stdin", 15, "-m thread -x close-stdin", &[]);
    let crashes = findings(&c.out.join("fuzz0/crashes"));
    assert!(!crashes.is_empty(), "no crash found: the test cases did not arrive");
    let replay = replay(&std::fs::read(&crashes[0]).unwrap());
    assert!(!replay.bugs.is_empty(), "{:?} hits no planted bug", crashes[0]);
}
