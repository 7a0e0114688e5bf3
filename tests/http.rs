//! HTTP intelligence end to end: grammar seeds the sample server answers, and the options
//! that switch grammar, dictionary and HTTP mutators.

use crate::util::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn grammar_seeds_are_requests_the_sample_server_answers_with_2xx_or_4xx() {
    let dir = scratch_dir("grammar-seeds");
    let run = run_with_input(
        Command::new(fuzzer()).args(["grammar", "-n", "40", "-o"]).arg(&dir),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(run.code(), Some(0), "{run:?}");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    assert_eq!(files.len(), 40);
    let server = pserv();
    for file in files {
        let run = run_with_input(
            &mut preloaded(server, free_port(), "thread"),
            &std::fs::read(&file).unwrap(),
            Duration::from_secs(5),
        );
        assert_eq!(run.code(), Some(0), "{file:?}: {run:?}");
        let out = run.stdout_text();
        let statuses: Vec<u32> =
            out.split("HTTP/1.").skip(1).filter_map(|r| r.get(2..5).and_then(|code| code.parse().ok())).collect();
        assert!(!statuses.is_empty(), "{file:?}: no response");
        assert!(statuses.iter().all(|s| (200..500).contains(s)), "{file:?}: {statuses:?}");
    }
}

#[test]
fn grammar_dictionary_and_mutator_options() {
    // Its campaigns pin core 0 too: sharing it with a CmpLog campaign starved that one (CI).
    let _guard = exclusive();
    let src = pserv_copy();
    let dict = scratch_dir("opts-dict").join("my.dict");
    std::fs::write(&dict, "magic=\"X-Pserv-Magic\"\n").unwrap();
    let campaign = |extra: &[&str]| {
        let out = scratch_dir("opts-out").join("out");
        let run = run_with_input(
            Command::new(fuzzer()).arg("--src-dir").arg(&src).arg("-o").arg(&out).args(["-d", "3"]).args(extra),
            b"",
            Duration::from_secs(120),
        );
        assert_eq!(run.code(), Some(0), "{extra:?}: {}\n{}", run.stdout_text(), run.stderr);
        let queue: Vec<String> = std::fs::read_dir(out.join("fuzz0/queue"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        (out, queue)
    };
    let (out, queue) = campaign(&[]);
    assert!(queue.iter().any(|n| n.contains(",orig:grammar-")), "no grammar seeds by default");
    assert!(out.join("http.dict").is_file());
    // The server's own literals, the magic debug token among them, as a dictionary.
    let strings = std::fs::read_to_string(out.join("server.dict")).unwrap();
    assert!(strings.contains("\"X-Debug-Token\"") && strings.contains("\"dbg-7f3a91c2\""), "{strings}");
    let (out, queue) = campaign(&["--no-grammar", "--no-dict", "--no-http-mutators", "-x", dict.to_str().unwrap()]);
    assert!(!queue.iter().any(|n| n.contains(",orig:grammar-")), "grammar seeds despite --no-grammar");
    assert!(!out.join("http.dict").exists() && !out.join("server.dict").exists());
    let (_, queue) = campaign(&["--grammar-seeds", "5"]);
    assert_eq!(queue.iter().filter(|n| n.contains(",orig:grammar-")).count(), 5);

    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(&src).args(["-x", "/nonexistent.dict"]),
        b"",
        Duration::from_secs(20),
    );
    assert!(run.stderr.contains("the dictionary /nonexistent.dict does not exist"), "{}", run.stderr);
}

/// CmpLog end to end: the debug-token bug hides behind a 12-character header value that no
/// seed, dictionary or grammar has (the seed has the header, with a wrong value, as a student's
/// own test request would). Tracing the seed's `strcmp` puts the value into the input (an
/// `op:its` entry), and the crash file replays against a plain server through `fuzzer send`.
/// (From no hint at all it takes two such steps, or the server's strings as a dictionary;
/// `scripts/bench-bugs` measures that.)
#[test]
fn cmplog_finds_the_magic_token_bug_and_its_crash_file_replays() {
    let _guard = exclusive();
    let src = pserv_copy();
    check_cmplog_finds_the_debug_token(Command::new(fuzzer()).arg("--src-dir").arg(src));
}

/// The same with a server built by AFL++'s `afl-clang-fast` with `AFL_LLVM_CMPLOG=1` (its own
/// cmplog runtime and routine hooks write the map, beside our preload's).
#[test]
fn cmplog_works_with_an_afl_clang_fast_cmplog_build() {
    let Some(server) = afl_clang_fast_pserv(&[("AFL_LLVM_CMPLOG", "1")]) else { return };
    let _guard = exclusive();
    check_cmplog_finds_the_debug_token(Command::new(fuzzer()).arg("--server").arg(server));
}

/// Run `fuzzer` (with its target options) for 30 s from a seed that has the X-Debug-Token header
/// with a wrong value; the crash it must find replays as debug-token.
fn check_cmplog_finds_the_debug_token(fuzzer: &mut Command) {
    let seeds = scratch_dir("cmplog-seeds");
    let get = "GET /index.html HTTP/1.1\r\nHost: localhost\r\nX-Debug-Token: letmein\r\n\r\n";
    // The only seed: with a second one, which of the two the scheduler favours decides whether
    // the header is traced within 30 s (in CI, twice, it was not).
    std::fs::write(seeds.join("get"), get).unwrap();
    let out = scratch_dir("cmplog-out").join("out");
    let run = run_with_input(
        fuzzer.arg("-o").arg(&out).arg("--seeds").arg(&seeds).args([
            "--no-grammar",
            // Not the server's strings either: the token must come from CmpLog.
            "--no-dict",
            "-d",
            "30",
            "--server-args=-p {port} -R {root} -s -m thread",
        ]),
        b"",
        Duration::from_secs(300),
    );
    let stdout = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{stdout}\n{}", run.stderr);
    let learned = findings(&out.join("fuzz0/queue")).iter().filter(|p| file_name(p).contains("op:its")).count();
    assert!(learned > 0, "no input-to-state entries in the queue");
    let crashes = findings(&out.join("fuzz0/crashes"));
    let token = crashes.iter().find(|c| std::fs::read(c).unwrap().windows(12).any(|w| w == b"dbg-7f3a91c2"));
    let token = token.unwrap_or_else(|| panic!("debug-token not found in 30 s ({learned} op:its entries)\n{stdout}"));
    let replay = replay(&std::fs::read(token).unwrap());
    assert_eq!(replay.bug.as_deref(), Some("debug-token"), "{}: {:?}", file_name(token), replay.send);
    assert_eq!(replay.signal, Some(libc::SIGSEGV));
}

/// tests/servers/deephttp: within a minute the default command reaches a bug behind a chunked
/// body or a JSON string escape (in 120 s without the structure mutators it reached neither:
/// README, "HTTP structure"), and the crash file replays with `fuzzer send` against the ASan
/// build started normally, whose report names the bug's function.
#[test]
fn the_structure_mutators_reach_a_bug_behind_a_chunked_body_or_a_json_escape() {
    let _guard = exclusive();
    let src = repo().join("tests/servers/deephttp");
    let out = scratch_dir("deephttp-out").join("out");
    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(&src).arg("-o").arg(&out).args([
            "-d",
            "60",
            "--no-triage",
            "--server-args=-p {port} -R {root} -m pool",
        ]),
        b"",
        Duration::from_secs(300),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let asan = make_with_gcc(&src, "-fsanitize=address");
    let root = out.join("fuzz0/root");
    let mut reached = std::collections::BTreeSet::new();
    for dir in ["fuzz0/crashes", "fuzz0-asan/crashes"] {
        for crash in findings(&out.join(dir)) {
            let port = free_port();
            let mut server = Command::new(&asan);
            server.args(["-p", &port.to_string(), "-R"]).arg(&root).args(["-m", "pool"]);
            let input = std::fs::read(&crash).unwrap();
            let (_, status, stderr) = send_to(&mut server, port, &input, Duration::from_secs(5));
            for function in ["dechunk", "utf8_put", "json_string"] {
                if status.is_some()
                    && stderr.contains("ERROR: AddressSanitizer")
                    && stderr.contains(&format!(" in {function} "))
                {
                    reached.insert(function);
                }
            }
        }
    }
    assert!(!reached.is_empty(), "no crash file reached dechunk or the JSON decoder: {}", run.stdout_text());
}
