//! The installer and the old-style commands: `scripts/install` puts a `fuzzer` on PATH that
//! finds its siblings from anywhere; `scripts/fuzz-pserv` and `scripts/fuzz-utils` map the
//! course's flags onto it.

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn script(name: &str) -> PathBuf {
    repo().join("scripts").join(name)
}

/// A PATH without the cargo target folder: the scripts must find `fuzzer` themselves. When the
/// target folder is not the repository's (CARGO_TARGET_DIR), the scripts' last resort is PATH.
fn plain_path() -> String {
    let bin = fuzzer().parent().unwrap().to_path_buf();
    let base = "/usr/local/bin:/usr/bin:/bin";
    if bin == repo().join("target/release") {
        base.to_string()
    } else {
        format!("{}:{base}", bin.display())
    }
}

fn assert_ok(run: &Run, what: &str) {
    assert_eq!(run.code(), Some(0), "{what} failed:\n{}\n{}", run.stdout_text(), run.stderr);
}

/// A run of `cmd` in `cwd` with the plain PATH (the cargo target folder left out).
fn run_in(cwd: &Path, cmd: &mut Command, input: &[u8], limit: Duration) -> Run {
    cmd.current_dir(cwd).env("PATH", plain_path()).env_remove("SOCKFUZZ_LIB").env_remove("FUZZER_RUNTIME_LIB");
    run_with_input(cmd, input, limit)
}

#[test]
fn installed_fuzzer_runs_from_path_and_builds_the_sample_server_from_another_folder() {
    let prefix = scratch_dir("install").join("prefix");
    let built = fuzzer().parent().unwrap().to_path_buf();
    let cwd = scratch_dir("install-cwd");
    let install = || {
        run_in(
            &cwd,
            Command::new(script("install")).arg("--from").arg(&built).arg(&prefix),
            b"",
            Duration::from_secs(60),
        )
    };
    let first = install();
    assert_ok(&first, "scripts/install");
    for name in ["fuzzer", "fuzzer-cc", "libsockfuzz.so", "libruntime.a", "fuzz-pserv", "fuzz-utils"] {
        assert!(prefix.join("lib/pserv-fuzz").join(name).is_file(), "{name} not installed");
        assert!(first.stdout_text().contains(name), "{name} not listed:\n{}", first.stdout_text());
    }
    assert!(first.stdout_text().contains("is not on your PATH"), "{}", first.stdout_text());
    // A second install overwrites the first.
    assert_ok(&install(), "scripts/install, again");
    for name in ["fuzzer", "fuzzer-cc", "fuzz-pserv", "fuzz-utils"] {
        let link = prefix.join("bin").join(name);
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink(), "{} is not a symlink", link.display());
    }

    // From PATH, in a folder that is neither the repository nor the prefix.
    let path = format!("{}:{}", prefix.join("bin").display(), plain_path());
    let from_path = |cmd: &mut Command, limit: u64| {
        cmd.current_dir(&cwd).env("PATH", &path).env_remove("SOCKFUZZ_LIB").env_remove("FUZZER_RUNTIME_LIB");
        run_with_input(cmd, b"", Duration::from_secs(limit))
    };
    let help = from_path(Command::new(prefix.join("bin/fuzzer")).arg("--help"), 30);
    assert_ok(&help, "fuzzer --help");
    assert!(help.stdout_text().contains("--src-dir"), "{}", help.stdout_text());
    // fuzzer-cc, libsockfuzz.so and libruntime.a sit in lib/pserv-fuzz, not in bin/ where the
    // symlink is: the build and its check run only if they are found through the link.
    let src = pserv_copy();
    let build = from_path(
        Command::new("fuzzer").args(["build", "--sanitizer", "none", "-o", "out", "--src-dir"]).arg(&src),
        240,
    );
    assert_ok(&build, "the installed fuzzer build");
    assert!(cwd.join("out/server-fuzz").is_file(), "{}", build.stdout_text());

    // The installed scripts find the installed fuzzer beside them, with nothing on PATH.
    let file = cwd.join("request");
    std::fs::write(&file, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut hex = Command::new(prefix.join("bin/fuzz-utils"));
    hex.args(["-t", "hex"]).arg(&file).current_dir(&cwd).env("PATH", "/usr/bin:/bin");
    let hex = run_with_input(&mut hex, b"", Duration::from_secs(30));
    assert_ok(&hex, "the installed fuzz-utils -t hex");
    assert!(hex.stdout_text().contains("47 45 54 20 2f"), "{}", hex.stdout_text());
}

/// One 30-second campaign through the old command line: the default output folder is
/// `<src>/fuzz_out`, as in fuzz-pserv.py, and `-r` prints its summary again.
#[test]
fn fuzz_pserv_runs_a_campaign_into_src_fuzz_out_and_reprints_its_summary() {
    let _guard = exclusive();
    let src = pserv_copy();
    let cwd = scratch_dir("fuzz-pserv-cwd");
    // `--` passes fuzzer's own options on; triage is left out to keep the test short.
    let run = run_in(
        &cwd,
        Command::new(script("fuzz-pserv")).arg("-s").arg(&src).args(["-d", "30", "-j", "1", "--", "--no-triage"]),
        b"",
        Duration::from_secs(300),
    );
    assert_ok(&run, "fuzz-pserv -s SRC -d 30 -j 1");
    let out = src.join("fuzz_out");
    assert!(out.join("fuzz0/fuzzer_stats").is_file(), "no {}/fuzz0/fuzzer_stats", out.display());
    assert!(stat(&out.join("fuzz0"), "execs_done").is_some_and(|n| n > 0), "no executions");
    assert!(run.stdout_text().contains("[Fuzzing Summary]"), "{}", run.stdout_text());
    assert!(!run.stdout_text().contains("[limits]"), "30 s on one core is within the budget");

    let summary = run_in(&cwd, Command::new(script("fuzz-pserv")).arg("-r").arg(&out), b"", Duration::from_secs(30));
    assert_ok(&summary, "fuzz-pserv -r OUT");
    let text = summary.stdout_text();
    assert!(text.contains("[Fuzzing Summary]") && text.contains(&format!("Located at: {}", out.display())), "{text}");
}

/// The CPU-second budget: asking for 9600 s on two cores is cut to 4800 s (on a one-core
/// machine, 9601 s on one core to 9600). The source folder has no Makefile, so the run stops
/// at the build, with fuzzer's error and exit status.
#[test]
fn fuzz_pserv_cuts_the_duration_to_the_cpu_budget() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
    let (asked, cut) = if cores == 2 { (9600, 4800) } else { (9601, 9600) };
    let empty = scratch_dir("no-makefile");
    let run = run_in(
        &empty,
        Command::new(script("fuzz-pserv")).arg("-s").arg(&empty).args([
            "-j",
            &cores.to_string(),
            "-d",
            &asked.to_string(),
        ]),
        b"",
        Duration::from_secs(60),
    );
    let line = run.stdout_text().lines().find(|l| l.starts_with("[limits]")).map(str::to_string);
    assert!(
        line.as_ref().is_some_and(|l| l.ends_with(&format!("fuzzing for {cut} s"))),
        "no [limits] line cutting to {cut} s:\n{}\n{}",
        run.stdout_text(),
        run.stderr
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("has no Makefile"), "{}", run.stderr);
}

#[test]
fn fuzz_pserv_help_explain_and_unknown_flags() {
    let cwd = scratch_dir("fuzz-pserv-help");
    let fuzz_pserv =
        |args: &[&str]| run_in(&cwd, Command::new(script("fuzz-pserv")).args(args), b"", Duration::from_secs(30));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = cores.saturating_sub(1).max(1);

    // No arguments: the help screen, as the old script did.
    for help in [fuzz_pserv(&[]), fuzz_pserv(&["-h"])] {
        assert_ok(&help, "fuzz-pserv -h");
        let text = help.stdout_text();
        for part in ["[Parallel Fuzzing]", "[Command-Line Switches]", "--fuzz-cores", "<src-dir>/fuzz_out"] {
            assert!(text.contains(part), "no {part} in:\n{text}");
        }
        let recommended = format!("Recommended: {n} core(s) for {} seconds", 9600 / n);
        assert!(text.contains(&recommended), "no `{recommended}` in:\n{text}");
    }
    let explain = fuzz_pserv(&["-e"]);
    assert_ok(&explain, "fuzz-pserv -e");
    assert!(
        explain.stdout_text().contains("9600") && explain.stdout_text().contains("[limits]"),
        "{}",
        explain.stdout_text()
    );

    let bad = fuzz_pserv(&["--bogus"]);
    assert_eq!(bad.code(), Some(2));
    assert!(bad.stderr.contains("'--bogus'") && bad.stderr.contains("-h"), "{}", bad.stderr);
    let missing = fuzz_pserv(&["-d", "30"]);
    assert_eq!(missing.code(), Some(2));
    assert!(missing.stderr.contains("--src-dir"), "{}", missing.stderr);

    let utils = run_in(&cwd, Command::new(script("fuzz-utils")).arg("-x"), b"", Duration::from_secs(30));
    assert_eq!(utils.code(), Some(2));
    assert!(utils.stderr.contains("'-x'") && utils.stderr.contains("-h"), "{}", utils.stderr);
    let help = run_in(&cwd, &mut Command::new(script("fuzz-utils")), b"", Duration::from_secs(30));
    assert_ok(&help, "fuzz-utils");
    assert!(help.stdout_text().contains("[Available Tools]"), "{}", help.stdout_text());
}

#[test]
fn fuzz_utils_sends_stdin_to_a_server_and_dumps_hex() {
    let cwd = scratch_dir("fuzz-utils");
    let port = free_port();
    let mut server =
        spawn(Command::new(pserv()).args(["-p", &port.to_string(), "-R"]).arg(www()).args(["-s", "-m", "thread"]));
    assert!(wait_listening(port, Duration::from_secs(10)), "the sample server did not listen on {port}");
    let request = b"GET /index.html HTTP/1.0\r\n\r\n";
    let send_file = |input: &[u8]| {
        run_in(
            &cwd,
            Command::new(script("fuzz-utils")).args(["-t", "send", "127.0.0.1", &port.to_string()]),
            input,
            Duration::from_secs(20),
        )
    };
    let send = send_file(request);
    // The same request on two connections of a comux file.
    let mut two = contract::comux::header(2, 2).to_vec();
    for conn in 0..2 {
        two.extend_from_slice(&contract::comux::chunk_header(conn, request.len() as u64, conn, 0));
        two.extend_from_slice(request);
    }
    let send_two = send_file(&two);
    kill_group(&mut server);
    assert_ok(&send, "fuzz-utils -t send");
    let text = send.stdout_text();
    assert!(text.contains(&format!("Sent bytes: {}", request.len())), "{text}");
    assert!(text.contains("HTTP/1.0 200") || text.contains("HTTP/1.1 200"), "no HTTP reply:\n{text}");
    assert_ok(&send_two, "fuzz-utils -t send of a comux file");
    let text = send_two.stdout_text();
    for conn in 0..2 {
        assert!(text.contains(&format!("--- connection {conn} ---\nHTTP/1.0 200")), "{text}");
    }

    let file = cwd.join("request");
    std::fs::write(&file, request).unwrap();
    let hex = run_in(
        &cwd,
        Command::new(script("fuzz-utils")).args(["--tool", "hex"]).arg(&file),
        b"",
        Duration::from_secs(30),
    );
    assert_ok(&hex, "fuzz-utils --tool hex");
    let first = hex.stdout_text().lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("00000000") && first.contains("47 45 54 20 2f 69"), "{}", hex.stdout_text());
    std::fs::write(&file, &two).unwrap();
    let hex =
        run_in(&cwd, Command::new(script("fuzz-utils")).args(["-t", "hex"]).arg(&file), b"", Duration::from_secs(30));
    assert_ok(&hex, "fuzz-utils -t hex of a comux file");
    let text = hex.stdout_text();
    assert!(text.starts_with("comux file: 2 connections, 2 chunks, played in the order 0 1\n"), "{text}");
    assert!(text.contains("chunk 1: connection 1, sched 1, flags none, 28 bytes\n00000000  47 45 54"), "{text}");
}
