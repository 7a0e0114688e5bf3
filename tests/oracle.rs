//! The path-traversal oracle: the planted traversals of the sample pserv are flagged in every
//! concurrency model, through `fuzzer run --root` and through a campaign (crash file, summary,
//! replay); a build with them fixed, and a correct server that opens files outside its root on
//! purpose (a log file, /etc/mime.types, /dev/urandom, /proc), are never flagged.

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Exit status of `fuzzer run` for a path traversal (128 + SIGUSR2).
const TRAVERSAL: i32 = 128 + libc::SIGUSR2;

fn traversal_bugs() -> Vec<Bug> {
    let bugs: Vec<Bug> = bugs().into_iter().filter(|b| b.expect == "traversal").collect();
    assert!(bugs.len() >= 2, "the manifest lists no traversal bugs: {bugs:?}");
    bugs
}

/// `fuzzer run --root ROOT -- SERVER -p PORT -R ROOT EXTRA..` on `input`.
fn run_rooted(server: &Path, root: &Path, extra: &[&str], input: &[u8]) -> Run {
    let port = free_port().to_string();
    run_with_input(
        Command::new(fuzzer())
            .args(["run", "-q", "--root"])
            .arg(root)
            .arg("--")
            .arg(server)
            .args(["-p", &port, "-R"])
            .arg(root)
            .args(extra),
        input,
        Duration::from_secs(20),
    )
}

#[test]
fn planted_traversals_are_flagged_in_every_model_and_silent_once_fixed() {
    let fixed = make_with_gcc(&pserv_src(), "-DPSERV_NO_TRAVERSAL");
    for model in MODELS {
        for bug in traversal_bugs() {
            let run = run_rooted(pserv(), &www(), &["-s", "-m", model], &bug.input());
            assert_eq!(run.code(), Some(TRAVERSAL), "{model} {}: {run:?}", bug.name);
            assert!(run.stderr.contains("[sockfuzz] path traversal: the server"), "{model}: {}", run.stderr);
            assert!(run.stderr.contains("outside its web root"), "{}", run.stderr);
            assert_eq!(bug_hit(&run.stderr).as_deref(), Some(bug.name.as_str()), "{}", run.stderr);

            let run = run_rooted(&fixed, &www(), &["-s", "-m", model], &bug.input());
            assert_eq!(run.code(), Some(0), "fixed build, {model} {}: {run:?}", bug.name);
        }
        // Ordinary requests (files, directories, the private area, a 404) stay silent.
        for (name, input) in benign() {
            let run = run_rooted(pserv(), &www(), &["-s", "-m", model], &input);
            assert_eq!(run.code(), Some(0), "{model} {name}: {run:?}");
        }
        let run = run_rooted(pserv(), &www(), &["-s", "-m", model], b"GET /nothing/here HTTP/1.0\r\n\r\n");
        assert_eq!(run.code(), Some(0), "{model}: {run:?}");
    }
    // Without --root there is no root to leave: the run is an ordinary one.
    let port = free_port().to_string();
    let run = run_with_input(
        Command::new(fuzzer()).args(["run", "-q", "--", pserv().to_str().unwrap(), "-p", &port, "-R"]).arg(www()),
        &traversal_bugs()[0].input(),
        Duration::from_secs(20),
    );
    assert_eq!(run.code(), Some(0), "{run:?}");
}

#[test]
fn a_symlink_out_of_the_root_is_flagged_and_one_inside_is_not() {
    let root = scratch_dir("symlink-root");
    copy_dir(&www(), &root);
    let outside = scratch_dir("symlink-outside");
    std::fs::write(outside.join("secret.html"), "secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
    std::os::unix::fs::symlink(root.join("index.html"), root.join("alias.html")).unwrap();
    let fixed = make_with_gcc(&pserv_src(), "-DPSERV_NO_TRAVERSAL");
    let run = run_rooted(&fixed, &root, &["-s"], b"GET /out/secret.html HTTP/1.0\r\n\r\n");
    assert_eq!(run.code(), Some(TRAVERSAL), "{run:?}");
    assert!(run.stderr.contains(&format!("resolves to {}/secret.html", outside.display())), "{}", run.stderr);
    let run = run_rooted(&fixed, &root, &["-s"], b"GET /alias.html HTTP/1.0\r\n\r\n");
    assert_eq!(run.code(), Some(0), "{run:?}");
}

/// tests/servers/logsrv, built with fuzzer-cc by the campaign or with gcc here.
fn logsrv_src() -> PathBuf {
    repo().join("tests/servers/logsrv")
}

#[test]
fn a_server_opening_a_log_mime_types_and_urandom_outside_its_root_is_not_flagged() {
    let server = make_with_gcc(&logsrv_src(), "");
    let work = scratch_dir("logsrv-work");
    let (root, cwd) = (work.join("www"), work.join("cwd"));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    copy_dir(&www(), &root);
    let absolute = work.join("access.log");
    // Relative to the server's working directory, a sibling of the root.
    let relative = "../relative-access.log";
    for log in [absolute.to_str().unwrap(), relative] {
        for request in [
            &b"GET /index.html HTTP/1.0\r\n\r\n"[..],
            b"GET /missing.html HTTP/1.0\r\n\r\n",
            b"GET /../../etc/passwd HTTP/1.0\r\n\r\n",
            b"GET /%2e%2e/secret HTTP/1.0\r\n\r\n",
        ] {
            let port = free_port().to_string();
            let run = run_with_input(
                Command::new(fuzzer())
                    .args(["run", "-q", "--root"])
                    .arg(&root)
                    .arg("--")
                    .arg(&server)
                    .args(["-p", &port, "-R"])
                    .arg(&root)
                    .args(["-l", log])
                    .current_dir(&cwd),
                request,
                Duration::from_secs(20),
            );
            assert_eq!(run.code(), Some(0), "log {log}, {}: {run:?}", String::from_utf8_lossy(request));
        }
    }
    // The opens did happen.
    assert_eq!(std::fs::read_to_string(&absolute).unwrap().lines().count(), 4);
    assert_eq!(std::fs::read_to_string(work.join("relative-access.log")).unwrap().lines().count(), 4);
}

#[test]
fn a_campaign_on_the_log_server_finds_no_traversal() {
    let _guard = exclusive();
    let out = scratch_dir("logsrv-out").join("out");
    let log = scratch_dir("logsrv-campaign-log").join("access.log");
    let run = run_with_input(
        Command::new(fuzzer())
            .arg("--src-dir")
            .arg(logsrv_src())
            .arg("-o")
            .arg(&out)
            .args(["-d", "10", "--no-cmplog"])
            .arg(format!("--server-args=-p {{port}} -R {{root}} -l {}", log.display())),
        b"",
        Duration::from_secs(180),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    assert!(stat(&out.join("fuzz0"), "execs_done").unwrap() > 100);
    for client in ["fuzz0", "fuzz0-asan"] {
        let crashes = findings(&out.join(client).join("crashes"));
        assert!(crashes.is_empty(), "{client}: {crashes:?}");
        assert!(!out.join(client).join("traversals.tsv").exists());
    }
    assert!(std::fs::read_to_string(&log).unwrap().lines().count() > 100, "the server did not log");
}

#[test]
fn a_traversal_found_by_a_campaign_is_a_crash_file_named_in_the_summary_that_replays() {
    let _guard = exclusive();
    // Seeds: one ordinary request and one traversal, which is saved as a crash when loaded.
    let seeds = scratch_dir("traversal-seeds");
    std::fs::write(seeds.join("index.req"), b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    let bug = traversal_bugs().into_iter().find(|b| b.name == "traversal-percent").unwrap();
    std::fs::write(seeds.join("traversal.req"), bug.input()).unwrap();
    let out = scratch_dir("traversal-out").join("out");
    let run = run_with_input(
        Command::new(fuzzer())
            .arg("--src-dir")
            .arg(pserv_copy())
            .arg("-o")
            .arg(&out)
            .arg("--seeds")
            .arg(&seeds)
            .args(["-d", "5", "--sanitizer", "none", "--no-grammar", "--no-cmplog"])
            .arg("--server-args=-p {port} -R {root} -s -m fork"),
        b"",
        Duration::from_secs(180),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let listed = std::fs::read_to_string(out.join("fuzz0/traversals.tsv")).unwrap();
    let (name, rest) = listed.lines().next().unwrap().split_once('\t').unwrap();
    assert!(name.starts_with("id:") && name.contains(&format!(",sig:{},", libc::SIGUSR2)), "{name}");
    assert!(rest.contains("etc/passwd"), "{rest}");
    let crash = out.join("fuzz0/crashes").join(name);
    assert_eq!(std::fs::read(&crash).unwrap(), bug.input());
    let summary = run.stdout_text();
    assert!(
        summary.contains("path traversal") && summary.contains("the server reached a file outside its web root:\n")
    );
    assert!(summary.contains("etc/passwd"), "{summary}");
    assert!(!out.join("fuzz0-asan").exists() && !out.join("server-fuzz-address").exists());

    // Replayed on the instrumented server under the preload, with the root it was fuzzed with.
    let run = run_rooted(&out.join("server-fuzz"), &www(), &["-s"], &std::fs::read(&crash).unwrap());
    assert_eq!(run.code(), Some(TRAVERSAL), "{run:?}");
    assert!(run.stderr.contains("[run] path traversal"), "{}", run.stderr);
}
