//! The build step, the coverage runtime on the sample pserv, ASan, AFL++ interop, and the
//! plain-words errors of `fuzzer build`.

use crate::util::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `fuzzer showmap` of one request: the covered `edge:count` lines.
fn showmap(server: &Path, input: &[u8]) -> Vec<String> {
    let out = scratch_dir("showmap-out");
    let run = run_with_input(
        Command::new(fuzzer()).arg("showmap").arg("--server").arg(server).arg("-o").arg(&out),
        input,
        Duration::from_secs(30),
    );
    assert_eq!(run.code(), Some(0), "{run:?}");
    run.stdout_text().lines().map(str::to_string).collect()
}

/// The map size the fork server reports, as LibAFL saw it (`total_edges` of a 2 s campaign).
fn reported_map_size(server: &Path) -> u64 {
    // A campaign: its client takes a core.
    let _guard = exclusive();
    let out = scratch_dir("mapsize-out").join("out");
    let run = run_with_input(
        Command::new(fuzzer()).arg("--server").arg(server).arg("-o").arg(&out).args(["-d", "2"]),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    stat(&out.join("fuzz0"), "total_edges").unwrap()
}

#[test]
fn pserv_builds_with_gcc_and_clang_and_coverage_depends_on_the_request() {
    let get = b"GET /index.html HTTP/1.0\r\n\r\n";
    let login = std::fs::read(pserv_src().join("benign/login.req")).unwrap();
    for compiler in ["gcc", "clang"] {
        if !require(compiler) {
            continue;
        }
        let src = pserv_copy();
        let before = std::fs::read_dir(&src).unwrap().count();
        let (run, out) = fuzzer_build(&src, &["--compiler", compiler], Duration::from_secs(120));
        assert_eq!(run.code(), Some(0), "{compiler}: {}\n{}", run.stdout_text(), run.stderr);
        let stdout = run.stdout_text();
        assert!(stdout.contains("[build] building your server with fuzzer-cc"), "{stdout}");
        assert!(stdout.contains("coverage map entries hit"), "{stdout}");
        assert_eq!(std::fs::read_dir(&src).unwrap().count(), before, "the source folder changed");
        let server = out.join("server-fuzz");
        let (a, b, c) = (showmap(&server, get), showmap(&server, get), showmap(&server, &login));
        assert!(a.len() > 20, "{compiler}: {a:?}");
        assert_eq!(a, b, "{compiler}: one request, two different maps");
        assert_ne!(a, c, "{compiler}: two requests, one map");
        let size = reported_map_size(&server);
        match compiler {
            "gcc" => assert_eq!(size, 65536),
            _ => assert!(size.is_multiple_of(64) && size < 65536 && size as usize >= a.len(), "clang map size {size}"),
        }
    }
}

fn bug(name: &str) -> Vec<u8> {
    std::fs::read(pserv_src().join("bugs").join(format!("{name}.req"))).unwrap()
}

fn run_once(server: &Path, input: &[u8]) -> Run {
    let port = free_port().to_string();
    run_with_input(
        Command::new(fuzzer()).args(["run", "-q", "--"]).arg(server).args(["-p", &port, "-R"]).arg(www()).arg("-s"),
        input,
        Duration::from_secs(30),
    )
}

#[test]
fn crashes_stay_signals_with_and_without_asan_and_asan_finds_its_bug() {
    // The ASan build is made by default, here with gcc's ASan (what a machine without clang has).
    let (run, out) = fuzzer_build(&pserv_copy(), &["--compiler", "gcc"], Duration::from_secs(120));
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    for binary in ["server-fuzz", "server-fuzz-address"] {
        let run = run_once(&out.join(binary), &bug("reqline-strtok"));
        assert_eq!(run.code(), Some(128 + libc::SIGSEGV), "{binary}: {run:?}");
    }
    // Every ASan-only planted bug: the plain build answers, the ASan build reports and aborts.
    let asan_only: Vec<Bug> = bugs().into_iter().filter(|b| b.expect == "asan").collect();
    assert!(asan_only.len() >= 4, "{asan_only:?}");
    for bug in asan_only {
        let plain = run_once(&out.join("server-fuzz"), &bug.input());
        assert_eq!(plain.code(), Some(0), "{}: {plain:?}", bug.name);
        let asan = run_once(&out.join("server-fuzz-address"), &bug.input());
        assert_eq!(asan.code(), Some(128 + libc::SIGABRT), "{}: {asan:?}", bug.name);
        assert!(asan.stderr.contains("ERROR: AddressSanitizer: "), "{}: {}", bug.name, asan.stderr);
    }
}

#[test]
fn afl_fuzz_runs_our_instrumented_server() {
    if !require("afl-fuzz") {
        return;
    }
    let (run, out) = fuzzer_build(&pserv_copy(), &[], Duration::from_secs(120));
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let seeds = scratch_dir("afl-seeds");
    for name in ["get-index.req", "login.req", "video.req"] {
        std::fs::copy(pserv_src().join("benign").join(name), seeds.join(name)).unwrap();
    }
    let afl_out = scratch_dir("afl-out");
    let root = scratch_dir("afl-root");
    copy_dir(&www(), &root);
    let port = free_port().to_string();
    let afl = run_with_input(
        Command::new("timeout")
            .args(["60", "afl-fuzz", "-V", "8", "-t", "1000", "-i"])
            .arg(&seeds)
            .arg("-o")
            .arg(&afl_out)
            .arg("--")
            .arg(out.join("server-fuzz"))
            .args(["-p", &port, "-R"])
            .arg(&root)
            .arg("-s")
            .env("AFL_PRELOAD", preload())
            .env("__AFL_DEFER_FORKSRV", "1")
            .env("SOCKFUZZ_OUTPUT", "0")
            .envs([("AFL_SKIP_CPUFREQ", "1"), ("AFL_NO_UI", "1"), ("AFL_NO_AFFINITY", "1")])
            .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1"),
        b"",
        Duration::from_secs(90),
    );
    let stats = std::fs::read_to_string(afl_out.join("default/fuzzer_stats"))
        .unwrap_or_else(|_| panic!("afl-fuzz wrote no stats: {}\n{}", afl.stdout_text(), afl.stderr));
    let value = |key: &str| stat_value(&stats, key).unwrap().to_string();
    eprintln!(
        "afl-fuzz: execs_done {}, corpus_count {}, stability {}",
        value("execs_done"),
        value("corpus_count"),
        value("stability")
    );
    assert!(value("execs_done").parse::<u64>().unwrap() > 100, "{stats}");
    assert!(value("corpus_count").parse::<u64>().unwrap() > 3, "no new paths: {stats}");
}

#[test]
fn build_errors_are_plain_words_with_the_fix() {
    let case = |files: &[(&str, &str)]| {
        let src = scratch_dir("bad-build");
        for (name, text) in files {
            std::fs::write(src.join(name), text).unwrap();
        }
        let (run, _) = fuzzer_build(&src, &[], Duration::from_secs(120));
        assert_eq!(run.code(), Some(1), "{run:?}");
        run.stderr
    };
    let err = case(&[("Makefile", "server: server.c\n\t$(CC) -o server server.c\n"), ("server.c", "int main( {\n")]);
    assert!(
        err.contains("make failed in the copy") && err.contains("Last lines:") && err.contains("server.c"),
        "{err}"
    );
    let err = case(&[("Makefile", "all:\n\ttrue\n")]);
    assert!(err.contains("produced no program named `server`"), "{err}");
    let err = case(&[
        ("Makefile", "server: server.c\n\tgcc -o server server.c\n"),
        ("server.c", "int main(void) { return 0; }\n"),
    ]);
    assert!(err.contains("without our instrumentation") && err.contains("$(CC)"), "{err}");
    let err = case(&[
        ("Makefile", "server: server.c\n\t$(CC) -o server server.c\n"),
        ("server.c", "int main(void) { return 3; }\n"),
    ]);
    assert!(err.contains("exited with status 3 before it listened"), "{err}");
    let err = case(&[]);
    assert!(err.contains("has no Makefile"), "{err}");
    let (run, _) = fuzzer_build(Path::new("/nonexistent/src"), &[], Duration::from_secs(120));
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}

#[test]
fn a_compiler_without_asan_gives_a_notice_and_the_plain_build_and_none_builds_plain_only() {
    // A compiler that refuses -fsanitize=address, as one without the ASan runtime does.
    let bin = scratch_dir("no-asan-cc");
    let cc = bin.join("cc-no-asan");
    std::fs::write(
        &cc,
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in -fsanitize=address) \
         echo 'cc-no-asan: error: unsupported option -fsanitize=address' >&2; exit 1;; esac; done\nexec gcc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&cc, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (run, out) = fuzzer_build(&pserv_copy(), &["--compiler", cc.to_str().unwrap()], Duration::from_secs(120));
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let stdout = run.stdout_text();
    let notice: Vec<&str> = stdout.lines().filter(|l| l.starts_with("[build] no AddressSanitizer build")).collect();
    assert_eq!(notice.len(), 1, "{}", run.stdout_text());
    assert!(notice[0].contains("unsupported option -fsanitize=address") && notice[0].ends_with("plain build only"));
    assert!(out.join("server-fuzz").is_file() && !out.join("server-fuzz-address").exists());

    let (run, out) = fuzzer_build(&pserv_copy(), &["--sanitizer", "none"], Duration::from_secs(120));
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    assert!(!run.stdout_text().contains("AddressSanitizer") && !run.stdout_text().contains("address"));
    assert!(out.join("server-fuzz").is_file() && !out.join("server-fuzz-address").exists());
}
