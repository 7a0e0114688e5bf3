//! The leak oracles, on tests/servers/leaks (its leaks are compile-time switches): a descriptor
//! leaked per request (a served file, a connection reset early) and a `strdup` per request never
//! freed (ASan build) are flagged through `fuzzer run` and through a campaign (crash files,
//! `leaks.tsv`, the summary, triage); the same server without them, and its log file opened once
//! for good, are not.

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `fuzzer run`'s exit statuses for the leaks (128 + the preload's signals).
const FD_LEAK: i32 = 128 + SIG_FD_LEAK;
const MEM_LEAK: i32 = 128 + SIG_MEM_LEAK;

const GET: &[u8] = b"GET /index.html HTTP/1.0\r\n\r\n";
const GET_WITH_COOKIE: &[u8] = b"GET /index.html HTTP/1.0\r\nCookie: session=abc\r\n\r\n";

fn leaks_src() -> PathBuf {
    repo().join("tests/servers/leaks")
}

/// A comux test case: the request line, and once the server waits for the rest, a reset (the
/// client gives up before the blank line).
fn reset_before_the_blank_line() -> Vec<u8> {
    let line = b"GET /index.html HTTP/1.0\r\n";
    let mut file = b"comux!!!".to_vec();
    for n in [0u32, 1, 2] {
        file.extend(n.to_le_bytes());
    }
    let chunk = |conn: u32, len: u64, sched: u32, flags: u32| {
        [&conn.to_le_bytes()[..], &len.to_le_bytes(), &sched.to_le_bytes(), &flags.to_le_bytes()].concat()
    };
    file.extend(chunk(0, line.len() as u64, 0, 0x1)); // AWAIT
    file.extend(line);
    file.extend(chunk(0, 0, 1, 0x8)); // RESET
    file
}

/// `fuzzer run -- SERVER -p PORT -R WWW EXTRA..` on `input`.
fn run(server: &Path, extra: &[&str], input: &[u8]) -> Run {
    let port = free_port().to_string();
    run_with_input(
        Command::new(fuzzer()).args(["run", "-q", "--"]).arg(server).args(["-p", &port, "-R"]).arg(www()).args(extra),
        input,
        Duration::from_secs(30),
    )
}

#[test]
fn a_descriptor_leaked_per_request_is_flagged_with_what_leaked_and_not_once_closed() {
    let (leaky_file, leaky_reset) =
        (make_with_gcc(&leaks_src(), "-DLEAK_FILE"), make_with_gcc(&leaks_src(), "-DLEAK_RESET"));
    let fixed = make_with_gcc(&leaks_src(), "");
    let served = www().join("index.html").canonicalize().unwrap();

    let run_ = run(&leaky_file, &[], GET);
    assert_eq!(run_.code(), Some(FD_LEAK), "{run_:?}");
    assert!(run_.stderr.contains("[run] descriptor leak"), "{}", run_.stderr);
    assert!(run_.stderr.contains(&format!("file {}", served.display())), "{}", run_.stderr);
    assert!(run_.stderr.contains("Fix: close every descriptor on every path"), "{}", run_.stderr);

    let run_ = run(&leaky_reset, &[], &reset_before_the_blank_line());
    assert_eq!(run_.code(), Some(FD_LEAK), "{run_:?}");
    assert!(run_.stderr.contains("a client's connection (TCP socket)"), "{}", run_.stderr);
    // The same server closes what a request that is not reset opened.
    assert_eq!(run(&leaky_reset, &[], GET).code(), Some(0));

    for input in [GET, &reset_before_the_blank_line()[..]] {
        let run_ = run(&fixed, &[], input);
        assert_eq!(run_.code(), Some(0), "{run_:?}");
        assert!(!run_.stderr.contains("leak"), "{}", run_.stderr);
    }
    // Off, the leak is not looked for.
    let port = free_port().to_string();
    let mut cmd = Command::new(fuzzer());
    cmd.args(["run", "-q", "--"]).arg(&leaky_file).args(["-p", &port, "-R"]).arg(www()).env("SOCKFUZZ_LEAKS", "0");
    assert_eq!(run_with_input(&mut cmd, GET, Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn a_log_file_opened_at_the_first_request_and_kept_is_not_a_leak() {
    let server = make_with_gcc(&leaks_src(), "");
    let log = scratch_dir("leaks-log").join("access.log");
    for input in [GET, GET_WITH_COOKIE] {
        let run_ = run(&server, &["-l", log.to_str().unwrap()], input);
        assert_eq!(run_.code(), Some(0), "{run_:?}");
    }
    // Each run opened the log (and a replay found it was not opened again).
    let lines = std::fs::read(&log).unwrap().iter().filter(|&&b| b == b'\n').count();
    assert!(lines >= 4, "{lines} lines logged");
}

#[test]
fn an_asan_build_leaking_memory_per_request_is_flagged_and_not_once_it_frees_it() {
    let Some(leaky) = make_with_clang(&leaks_src(), "-fsanitize=address -DLEAK_COOKIE") else { return };
    let fixed = make_with_clang(&leaks_src(), "-fsanitize=address").unwrap();
    let run_ = run(&leaky, &[], GET_WITH_COOKIE);
    assert_eq!(run_.code(), Some(MEM_LEAK), "{run_:?}");
    assert!(run_.stderr.contains("ERROR: LeakSanitizer: detected memory leaks"), "{}", run_.stderr);
    assert!(run_.stderr.contains("in note_cookie"), "{}", run_.stderr);
    assert!(run_.stderr.contains("[run] memory leak"), "{}", run_.stderr);
    assert!(run_.stderr.contains("Fix: free what is allocated per request"), "{}", run_.stderr);
    // No cookie, no copy; and the build that frees it.
    assert_eq!(run(&leaky, &[], GET).code(), Some(0));
    let run_ = run(&fixed, &[], GET_WITH_COOKIE);
    assert_eq!(run_.code(), Some(0), "{run_:?}");
    assert!(!run_.stderr.contains("LeakSanitizer"), "{}", run_.stderr);
}

/// A campaign (plain and ASan clients, persistent mode) of tests/servers/leaks built with
/// `cflags` and given `args`: its run and OUT.
fn campaign(name: &str, cflags: &str, args: &str, seconds: &str) -> (Run, PathBuf) {
    let out = scratch_dir(name).join("out");
    let run_ = run_with_input(
        Command::new(fuzzer())
            .arg("--src-dir")
            .arg(leaks_src())
            .arg("-o")
            .arg(&out)
            .args(["-d", seconds, "--no-cmplog", "--no-grammar"])
            .arg(format!("--server-args={args}"))
            .env("CFLAGS", cflags),
        b"",
        Duration::from_secs(300),
    );
    assert_eq!(run_.code(), Some(0), "{}\n{}", run_.stdout_text(), run_.stderr);
    (run_, out)
}

#[test]
fn a_campaign_saves_each_leak_as_a_crash_named_in_the_summary_and_grouped_by_triage() {
    let _guard = exclusive();
    let (run_, out) = campaign("leaks-campaign", "-g -O1 -DLEAK_FILE -DLEAK_COOKIE", "-p {port} -R {root}", "25");
    for (client, kind, signal) in [("fuzz0", "descriptor", SIG_FD_LEAK), ("fuzz0-asan", "memory", SIG_MEM_LEAK)] {
        let listed = std::fs::read_to_string(out.join(client).join("leaks.tsv")).unwrap_or_default();
        let line = listed.lines().find(|l| l.split('\t').nth(1) == Some(kind));
        let line = line.unwrap_or_else(|| panic!("{client}: no {kind} leak in leaks.tsv:\n{listed}"));
        let name = line.split('\t').next().unwrap();
        assert!(name.starts_with("id:") && name.contains(&format!(",sig:{signal},")), "{name}");
        assert!(out.join(client).join("crashes").join(name).is_file(), "{name}");
    }
    // The leaking inputs went on to the queue: the server was fuzzed past its first request.
    assert!(stat(&out.join("fuzz0"), "corpus_count").unwrap() > 10);
    let summary = run_.stdout_text();
    assert!(summary.contains(" descriptor leak") && summary.contains(" memory leak"), "{summary}");
    // The explanations, wrapped: compared word by word.
    let words = summary.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("Fix: close every descriptor") && words.contains("Fix: free what is allocated"),
        "{summary}"
    );
    let report = std::fs::read_to_string(out.join("triage/report.md")).unwrap();
    assert!(report.contains("descriptor leak of a file in the web root"), "{report}");
    assert!(report.contains("memory leak in note_cookie (server.c:"), "{report}");

    // A crash file replays as the leak it is.
    let listed = std::fs::read_to_string(out.join("fuzz0/leaks.tsv")).unwrap();
    let name = listed.lines().next().unwrap().split('\t').next().unwrap();
    let input = std::fs::read(out.join("fuzz0/crashes").join(name)).unwrap();
    let root = scratch_dir("leaks-replay-root");
    copy_dir(&out.join("fuzz0/root"), &root);
    let port = free_port().to_string();
    let replay = run_with_input(
        Command::new(fuzzer())
            .args(["run", "-q", "--"])
            .arg(out.join("server-fuzz"))
            .args(["-p", &port, "-R"])
            .arg(&root),
        &input,
        Duration::from_secs(30),
    );
    assert_eq!(replay.code(), Some(FD_LEAK), "{replay:?}");
}

#[test]
fn a_campaign_on_the_server_without_leaks_flags_none_and_not_its_log_file() {
    let _guard = exclusive();
    let log = scratch_dir("leaks-campaign-log").join("access.log");
    let args = format!("-p {{port}} -R {{root}} -l {}", log.display());
    let (run_, out) = campaign("no-leaks-campaign", "-g -O1", &args, "20");
    assert!(stat(&out.join("fuzz0"), "execs_done").unwrap() > 1000);
    for client in ["fuzz0", "fuzz0-asan"] {
        let crashes = findings(&out.join(client).join("crashes"));
        assert!(crashes.is_empty(), "{client}: {crashes:?}");
        assert!(!out.join(client).join("leaks.tsv").exists(), "{client}");
    }
    let summary = run_.stdout_text();
    assert!(!summary.contains("descriptor leak") && !summary.contains("memory leak"), "{summary}");
    // Fuzzed request lines: not all UTF-8.
    let lines = std::fs::read(&log).unwrap().iter().filter(|&&b| b == b'\n').count();
    assert!(lines > 1000, "the server did not log");
}
