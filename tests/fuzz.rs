//! End-to-end tests of the main job on the sample pserv: bugs found and replayed, AFL++
//! output format, Ctrl-C, resume, plain errors, and AFL++-built binaries.

use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Every file under `dir` with its bytes, sorted.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push((p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap()));
            }
        }
    }
    files.sort();
    files
}

fn signal_of(name: &str) -> i32 {
    let rest = &name[name.find("sig:").expect("crash name has sig:") + 4..];
    rest[..2].parse().unwrap()
}

struct Campaign {
    out: PathBuf,
    run: Run,
}

/// One 30-second campaign on a scratch copy of tests/pserv, shared by several tests.
fn campaign() -> &'static Campaign {
    static CAMPAIGN: OnceLock<Campaign> = OnceLock::new();
    CAMPAIGN.get_or_init(|| {
        let _guard = exclusive();
        let src = pserv_copy();
        let before = snapshot(&src);
        let out = scratch_dir("fuzz-out").join("out");
        let run = run_with_input(
            Command::new(fuzzer()).arg("--src-dir").arg(&src).arg("-o").arg(&out).args(["-d", "30", THREAD_MODEL]),
            b"",
            Duration::from_secs(300),
        );
        assert_eq!(run.code(), Some(0), "fuzzer failed: {}\n{}", run.stdout_text(), run.stderr);
        assert!(snapshot(&src) == before, "the source folder changed during the build");
        Campaign { out, run }
    })
}

/// Triage ran at the end of the default command: its groups hold every crash and hang file,
/// each group that reproduced has a shortest input no longer than its shortest file that still
/// fails under `fuzzer run` against the ASan build, and the report shows the server's sources.
#[test]
fn triage_groups_every_finding_and_each_shortest_input_still_fails() {
    let c = campaign();
    let text = std::fs::read_to_string(c.out.join("triage.json")).expect("no triage.json after the campaign");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let groups = json["groups"].as_array().unwrap();
    let names = |g: &serde_json::Value| -> Vec<String> {
        g["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect()
    };
    let mut grouped: Vec<String> = groups.iter().flat_map(names).collect();
    grouped.sort();
    let mut all: Vec<String> = ["fuzz0", "fuzz0-asan"]
        .iter()
        .flat_map(|i| ["crashes", "hangs"].map(|d| format!("{i}/{d}")))
        .flat_map(|d| {
            findings(&c.out.join(&d))
                .into_iter()
                .map(move |f| format!("{d}/{}", f.file_name().unwrap().to_string_lossy()))
        })
        .collect();
    all.sort();
    assert_eq!(grouped, all, "triage left files out or counted some twice");
    assert!(c.run.stdout_text().contains("distinct bug"), "{}", c.run.stdout_text());
    let root = c.out.join("triage/root");
    for g in groups.iter().filter(|g| g["reproduced"].as_u64().unwrap() > 0) {
        let min = std::fs::read(c.out.join(g["minimized"].as_str().unwrap())).unwrap();
        let shortest = names(g).iter().map(|f| std::fs::read(c.out.join(f)).unwrap().len()).min().unwrap();
        assert!(min.len() <= shortest, "{g}: {} > {shortest} bytes", min.len());
        let port = free_port().to_string();
        let run = run_with_input(
            Command::new(fuzzer())
                .args(["run", "-q", "--root"])
                .arg(&root)
                .arg("--")
                .arg(c.out.join("server-fuzz-address"))
                .args(["-p", &port, "-R"])
                .arg(&root)
                .args(["-s", "-m", "thread"]),
            &min,
            Duration::from_secs(30),
        );
        assert!(!matches!(run.code(), Some(0 | 1)), "{g}: the shortest input did not fail: {}", run.stderr);
    }
    // reqline-strtok, found in every campaign within a second, is in serve_one.
    let report = std::fs::read_to_string(c.out.join("triage/report.md")).unwrap();
    assert!(report.contains("in serve_one (http.c:") && report.contains("```c\n"), "{report}");
}

/// The multi-connection stage ran on the plain client only, for about its base tenth of the
/// time (its share grows only while it finds more per second than the rest), and the summary
/// says how much it had.
#[test]
fn the_multi_connection_stage_has_its_share_of_the_time_and_the_summary_says_it() {
    let c = campaign();
    let figure = |text: &str, key: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(&format!("{key:<18}: "))).unwrap_or_else(|| panic!("{text}"));
        line.split(": ").nth(1).unwrap().trim().parse().unwrap()
    };
    let text = std::fs::read_to_string(c.out.join("fuzz0/several_connections_stats")).unwrap();
    let share = figure(&text, "stage_seconds") / figure(&text, "seconds");
    assert!((0.03..=0.5).contains(&share), "{text}");
    assert!(!c.out.join("fuzz0-asan/several_connections_stats").exists(), "the ASan client ran the stage");
    let summary = c.run.stdout_text();
    assert!(
        summary.contains("Test cases of several connections: ") && summary.contains("% of the fuzzing time"),
        "{summary}"
    );
}

/// The response-state feedback kept inputs that made a new transition between the status codes
/// of their responses (`+state` in their names, at most one per transition), and the summary
/// counts them.
#[test]
fn inputs_that_make_a_new_transition_between_response_codes_are_kept_and_counted() {
    let c = campaign();
    let names: Vec<String> = std::fs::read_dir(c.out.join("fuzz0/queue"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("id:"))
        .collect();
    let state = names.iter().filter(|n| n.contains(",+state")).count();
    assert!((1..=1024).contains(&state), "{state} of {} queue entries made a new transition", names.len());
    let summary = c.run.stdout_text().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        summary.contains("Response codes: ") && summary.contains("made a transition between status codes"),
        "{summary}"
    );
}

#[test]
fn finds_crashes_and_the_hang_and_every_crash_file_replays_with_fuzzer_send() {
    let c = campaign();
    let crashes = findings(&c.out.join("fuzz0/crashes"));
    let hangs = findings(&c.out.join("fuzz0/hangs"));
    let signals: std::collections::BTreeSet<i32> =
        crashes.iter().map(|p| signal_of(&p.file_name().unwrap().to_string_lossy())).collect();
    assert!(crashes.len() >= 3, "only {} crashes", crashes.len());
    assert!(signals.contains(&libc::SIGSEGV), "{signals:?}");
    assert!(!hangs.is_empty(), "the EOF-spin hang was not found");
    assert!(c.out.join("fuzz0/crashes/README.txt").is_file());

    let mut found = std::collections::BTreeSet::new();
    for crash in &crashes {
        let name = crash.file_name().unwrap().to_string_lossy().into_owned();
        let replay = replay(&std::fs::read(crash).unwrap());
        assert!(replay.send.stdout_text().starts_with("Reading from STDIN and sending to server..."));
        if signal_of(&name) == libc::SIGUSR2 {
            // A path traversal: a plain server serves the file and lives on (tests/oracle.rs),
            // unless another planted bug of the same pipelined input crashes it: one announced
            // after the traversal (which the oracle's run never reached), or one before it whose
            // heap corruption strikes later (`Content-Length: -1`).
            let at = replay.bugs.iter().position(|b| b.starts_with("traversal-"));
            let at = at.unwrap_or_else(|| panic!("{name}: {:?}", replay.bugs));
            if replay.signal.is_some() {
                let other = replay.bugs.iter().any(|b| !b.starts_with("traversal-"));
                assert!(other, "{name} crashed the plain server at its traversal: {:?}", replay.bugs);
            }
            found.insert(replay.bugs[at].clone());
        } else {
            assert_eq!(replay.signal, Some(signal_of(&name)), "{name} did not reproduce: {:?}", replay.send);
            found.insert(replay.bug.unwrap_or_else(|| format!("unplanted crash {name}")));
        }
    }
    // The ASan client's files: on the plain server they crash too (ASan may have reported a
    // SIGSEGV bug as an abort), or hit a bug only ASan or the traversal oracle sees.
    for crash in findings(&c.out.join("fuzz0-asan/crashes")) {
        let name = crash.file_name().unwrap().to_string_lossy().into_owned();
        let replay = replay(&std::fs::read(&crash).unwrap());
        let oracle_bug = replay.bugs.iter().find(|b| b.starts_with("asan-") || b.starts_with("traversal-"));
        match (replay.signal, oracle_bug, &replay.bug) {
            (Some(_), ..) => found.insert(replay.bug.unwrap_or_else(|| format!("unplanted crash {name}"))),
            (None, Some(bug), _) => found.insert(bug.clone()),
            // ASan also sees memory errors a plain build survives in a planted bug's own code
            // (`Content-Length: -1` writes one byte into the malloc header).
            (None, None, Some(bug)) => found.insert(bug.clone()),
            (None, None, None) => panic!("{name} did not reproduce on a plain server"),
        };
    }
    eprintln!("planted bugs found: {found:?}");
    // How soon each bug is found is measured by scripts/bench-bugs; here, that some are.
    assert!(found.contains("reqline-strtok"), "the easiest bug was not found; found {found:?}");
    assert!(found.len() >= 3, "only {found:?}");
    assert!(found.iter().all(|b| !b.starts_with("unplanted")), "{found:?}");

    // A hang file keeps a plain server from closing the connection.
    let port = free_port();
    let mut cmd = Command::new(pserv());
    cmd.args(["-p", &port.to_string(), "-R"]).arg(www()).args(["-s", "-m", "thread"]);
    let mut child = spawn(&mut cmd);
    assert!(wait_listening(port, Duration::from_secs(5)));
    let send = run_with_input(
        Command::new(fuzzer()).args(["send", "127.0.0.1", &port.to_string(), "--timeout", "1"]),
        &std::fs::read(&hangs[0]).unwrap(),
        Duration::from_secs(10),
    );
    kill_group(&mut child);
    assert_eq!(send.code(), Some(3), "{:?}: {send:?}", hangs[0]);
}

#[test]
fn the_asan_client_finds_a_bug_only_asan_sees_and_fuzzer_run_shows_its_report() {
    let c = campaign();
    let crashes = findings(&c.out.join("fuzz0-asan/crashes"));
    // The plain (trace) build names the planted bug a file hits, and survives the ASan-only ones.
    let asan_only = crashes.iter().find(|crash| {
        let replay = replay(&std::fs::read(crash).unwrap());
        replay.signal.is_none() && replay.bugs.iter().any(|b| b.starts_with("asan-"))
    });
    let Some(crash) = asan_only else {
        panic!("no ASan-only bug among the ASan client's {} crash files: {crashes:?}", crashes.len())
    };
    let port = free_port().to_string();
    let run = run_with_input(
        Command::new(fuzzer())
            .args(["run", "-q", "--"])
            .arg(c.out.join("server-fuzz-address"))
            .args(["-p", &port, "-R"])
            .arg(www())
            .args(["-s", "-m", "thread"]),
        &std::fs::read(crash).unwrap(),
        Duration::from_secs(30),
    );
    assert_eq!(run.code(), Some(128 + libc::SIGABRT), "{crash:?}: {run:?}");
    assert!(run.stderr.contains("ERROR: AddressSanitizer:"), "{}", run.stderr);
}

#[test]
fn summary_counts_match_the_folders() {
    let c = campaign();
    let count = |kind: &str| -> usize {
        ["fuzz0", "fuzz0-asan"].iter().map(|d| findings(&c.out.join(d).join(kind)).len()).sum()
    };
    let (crashes, hangs) = (count("crashes"), count("hangs"));
    let printed = Command::new(fuzzer()).arg("--summary").arg(&c.out).output().unwrap();
    let text = String::from_utf8_lossy(&printed.stdout).into_owned();
    assert!(printed.status.success(), "{text}");
    assert!(text.starts_with("[Fuzzing Summary]\n"), "{text}");
    assert!(text.contains(&format!("Found {crashes} crashes.")), "{text}");
    assert!(text.contains(&format!("Found {hangs} hang")), "{text}");
    assert!(text.contains(&format!("        - {}/fuzz0/crashes\n", c.out.display())), "{text}");
    assert!(text.contains(&format!("Want to see this again? Run fuzzer --summary {}", c.out.display())));
    // The run itself ended with the same block.
    assert!(c.run.stdout_text().contains(&text), "{}", c.run.stdout_text());
}

#[test]
fn fuzzer_stats_plot_data_and_names_follow_afl() {
    let c = campaign();
    let dir = c.out.join("fuzz0");
    let stats = std::fs::read_to_string(dir.join("fuzzer_stats")).unwrap();
    let keys: Vec<&str> = stats.lines().map(|l| l.split(" : ").next().unwrap().trim_end()).collect();
    let afl_keys = [
        "start_time",
        "last_update",
        "run_time",
        "fuzzer_pid",
        "cycles_done",
        "cycles_wo_finds",
        "execs_done",
        "execs_per_sec",
        "execs_ps_last_min",
        "corpus_count",
        "corpus_favored",
        "corpus_found",
        "corpus_imported",
        "corpus_variable",
        "max_depth",
        "cur_item",
        "pending_favs",
        "pending_total",
        "stability",
        "bitmap_cvg",
        "saved_crashes",
        "saved_hangs",
        "last_find",
        "last_crash",
        "last_hang",
        "execs_since_crash",
        "exec_timeout",
        "slowest_exec_ms",
        "peak_rss_mb",
        "cpu_affinity",
        "edges_found",
        "total_edges",
        "var_byte_count",
        "havoc_expansion",
        "auto_dict_entries",
        "testcache_size",
        "testcache_count",
        "testcache_evict",
        "afl_banner",
        "afl_version",
        "target_mode",
        "command_line",
    ];
    assert_eq!(keys, afl_keys);
    for line in stats.lines() {
        assert_eq!(line.find(": "), Some(18), "key not padded to 18 columns: {line}");
    }
    let value = |key: &str| -> f64 { stat_value(&stats, key).unwrap().trim_end_matches('%').parse().unwrap() };
    let (execs, run_time, eps) = (value("execs_done"), value("run_time"), value("execs_per_sec"));
    assert!(execs > 1000.0, "{stats}");
    assert!((25.0..=40.0).contains(&run_time), "{stats}");
    let expected = execs / run_time;
    assert!((eps - expected).abs() / expected < 0.1, "execs_per_sec {eps} vs execs_done/run_time {expected}");
    assert_eq!(value("saved_crashes") as usize, findings(&dir.join("crashes")).len());
    assert_eq!(value("saved_hangs") as usize, findings(&dir.join("hangs")).len());
    assert_eq!(value("corpus_count") as usize, findings(&dir.join("queue")).len());
    assert!(value("edges_found") > 10.0);

    let plot = std::fs::read_to_string(dir.join("plot_data")).unwrap();
    let mut lines = plot.lines();
    assert_eq!(lines.next().unwrap(), "# relative_time, cycles_done, cur_item, corpus_count, pending_total, pending_favs, map_size, saved_crashes, saved_hangs, max_depth, execs_per_sec, total_execs, edges_found");
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.split(", ").count() == 13 && r.split(", ").nth(6).unwrap().ends_with('%')), "{plot}");

    let queue = findings(&dir.join("queue"));
    let names: Vec<String> = queue.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(names[0].starts_with("id:000000,time:0,execs:0,orig:"), "{names:?}");
    assert!(names.iter().any(|n| n.contains(",src:") && n.contains(",op:havoc")), "{names:?}");
    for crash in findings(&dir.join("crashes")) {
        let name = crash.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("id:") && name[9..].starts_with(",sig:"), "{name}");
    }
    // Ids count up from 0 in each folder.
    for (i, name) in names.iter().enumerate() {
        assert!(name.starts_with(&format!("id:{i:06},")), "{name}");
    }
}

/// The campaign drew its charts at the end, and `fuzzer plot` draws them again from the clients'
/// plot_data alone: PNGs with a line in each client's colour, SVGs naming every client.
#[test]
fn fuzzer_plot_draws_every_client_from_a_30_s_campaign() {
    let c = campaign();
    let charts = ["execs", "paths", "findings"];
    for chart in charts {
        for ext in ["png", "svg"] {
            let file = c.out.join("plots").join(format!("{chart}.{ext}"));
            assert!(file.is_file(), "the campaign did not write {}: {}", file.display(), c.run.stdout_text());
        }
    }
    assert!(c.run.stdout_text().contains("[plot] charts: "), "{}", c.run.stdout_text());

    // Only the plot_data files, copied into a fresh folder.
    let out = scratch_dir("plot-out");
    let clients = ["fuzz0", "fuzz0-asan"];
    for client in clients {
        std::fs::create_dir(out.join(client)).unwrap();
        std::fs::copy(c.out.join(client).join("plot_data"), out.join(client).join("plot_data")).unwrap();
    }
    let run = run_with_input(Command::new(fuzzer()).arg("plot").arg(&out), b"", Duration::from_secs(60));
    assert_eq!(run.code(), Some(0), "{run:?}");
    assert!(run.stdout_text().contains("[plot] charts of 2 client(s): "), "{}", run.stdout_text());
    // The first two line colours of plot.rs.
    let colours = [[31u8, 119, 180], [255, 127, 14]];
    for chart in charts {
        let png = out.join("plots").join(format!("{chart}.png"));
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", png.display());
        let mut reader = png::Decoder::new(bytes.as_slice()).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(frame.color_type, png::ColorType::Rgb);
        assert!(frame.width >= 800 && frame.height >= 300, "{frame:?}");
        let pixels: Vec<&[u8]> = pixels[..frame.buffer_size()].chunks(3).collect();
        for colour in colours {
            let n = pixels.iter().filter(|p| **p == colour).count();
            assert!(n > 100, "{}: only {n} pixels of the line colour {colour:?}", png.display());
        }
        let dark = pixels.iter().filter(|p| p.iter().all(|&v| v < 80)).count();
        assert!(dark > 1000, "{}: only {dark} dark pixels (text, axes, the total)", png.display());
        let svg = std::fs::read_to_string(out.join("plots").join(format!("{chart}.svg"))).unwrap();
        for name in clients.iter().chain(&["total"]) {
            assert!(svg.contains(&format!("\n{name}\n</text>")), "{chart}.svg does not name {name}");
        }
    }
}

/// `fuzzer plot` on a missing folder, one that holds no campaign, and one whose plot_data has
/// no rows yet: plain errors that say what to give instead.
#[test]
fn fuzzer_plot_errors_say_what_to_give() {
    let plot = |out: &Path| run_with_input(Command::new(fuzzer()).arg("plot").arg(out), b"", Duration::from_secs(20));
    let run = plot(Path::new("/nonexistent/fuzz_out"));
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(
        run.stderr.contains("/nonexistent/fuzz_out is not a folder: give the output folder of a campaign"),
        "{}",
        run.stderr
    );
    let out = scratch_dir("plot-empty");
    let run = plot(&out);
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("holds no fuzzK/plot_data"), "{}", run.stderr);
    std::fs::create_dir(out.join("fuzz0")).unwrap();
    std::fs::write(out.join("fuzz0/plot_data"), "# relative_time, cycles_done\n").unwrap();
    let run = plot(&out);
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("hold no rows yet"), "{}", run.stderr);
    assert!(!out.join("plots").exists());
}

#[test]
fn ctrl_c_stops_everything_quickly_keeps_files_and_the_run_resumes() {
    let _guard = exclusive();
    let src = pserv_copy();
    let out = scratch_dir("ctrlc-out").join("out");
    let segments = shm_segments();
    let mut cmd = Command::new(fuzzer());
    cmd.arg("--src-dir").arg(&src).arg("-o").arg(&out).args(["-d", "600", THREAD_MODEL]);
    let mut child = spawn(&mut cmd);
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    wait_until(Duration::from_secs(120), "fuzz0/fuzzer_stats", || {
        out.join("fuzz0/fuzzer_stats").exists() || {
            assert!(child.try_wait().unwrap().is_none(), "fuzzer exited early");
            false
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(!processes_under(&out).is_empty(), "no target process running while fuzzing");
    // What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    let sent = Instant::now();
    // SAFETY: signalling the process group this test created.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let status = wait_for(&mut child, Duration::from_secs(2));
    let took = sent.elapsed();
    if status.is_none() {
        kill_group(&mut child);
    }
    let stdout = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
    assert!(status.is_some(), "still running 2 s after Ctrl-C");
    assert!(took < Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(processes_under(&out), Vec::<i32>::new(), "target processes left after Ctrl-C");
    assert_eq!(leaked_shm(&segments), Vec::<String>::new(), "shared memory left after Ctrl-C");
    assert!(out.join("fuzz0-asan/queue").is_dir(), "no ASan client ran");
    assert!(stdout.contains("[Fuzzing Summary]"), "{stdout}\n{}", String::from_utf8_lossy(&stderr.join().unwrap()));

    let queue_before = findings(&out.join("fuzz0/queue"));
    assert!(queue_before.len() > 50);
    // No file cut short by the stop. One empty entry can be real: a connection that sends
    // nothing (the server reads end-of-file at once) is a path of its own.
    let empty: Vec<_> = queue_before.iter().filter(|f| std::fs::read(f).unwrap().is_empty()).collect();
    assert!(empty.len() <= 1, "empty queue files: {empty:?}");
    let stats = std::fs::read_to_string(out.join("fuzz0/fuzzer_stats")).unwrap();
    assert!(stats.lines().count() == 42 && stats.ends_with('\n'), "{stats}");

    // Without --resume the folder is refused; with it the queue comes back.
    let again = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(&src).arg("-o").arg(&out).args(["-d", "5", THREAD_MODEL]),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(again.code(), Some(1));
    assert!(again.stderr.contains("holds an earlier run: continue it with --resume"), "{}", again.stderr);
    let resumed = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(&src).arg("-o").arg(&out).args([
            "-d",
            "5",
            "--resume",
            THREAD_MODEL,
        ]),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(resumed.code(), Some(0), "{}\n{}", resumed.stdout_text(), resumed.stderr);
    let queue_after = findings(&out.join("fuzz0/queue"));
    assert!(queue_after.len() >= queue_before.len());
    assert!(queue_before.iter().all(|f| queue_after.contains(f)), "resume lost queue entries");
}

#[test]
fn bad_inputs_are_plain_errors_within_seconds() {
    // Its runs start clients on cores (one on core 0 with taskset), as campaigns do.
    let _guard = exclusive();
    // A seed folder with no files.
    let empty = scratch_dir("empty-seeds");
    let out = scratch_dir("bad-out").join("out");
    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(pserv_src()).arg("-o").arg(&out).arg("--seeds").arg(&empty),
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("has no (non-empty) files"), "{}", run.stderr);

    // A web root that is not there.
    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(pserv_src()).args(["--root", "/nonexistent/www"]),
        b"",
        Duration::from_secs(20),
    );
    assert!(run.stderr.contains("--root /nonexistent/www is not a folder"), "{}", run.stderr);

    // A missing source folder, and one without a Makefile.
    let run =
        run_with_input(Command::new(fuzzer()).args(["--src-dir", "/nonexistent/pserv"]), b"", Duration::from_secs(20));
    assert!(run.stderr.contains("does not exist: pass the folder that holds your server's Makefile"), "{}", run.stderr);
    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(&empty).arg("-o").arg(&out),
        b"",
        Duration::from_secs(20),
    );
    assert!(run.stderr.contains("has no Makefile"), "{}", run.stderr);

    // A server that never listens.
    let src = scratch_dir("never-listens");
    std::fs::write(src.join("server.c"), "#include <unistd.h>\nint main(void) { for (;;) pause(); }\n").unwrap();
    std::fs::write(src.join("Makefile"), "server: server.c\n\t$(CC) -o server server.c\n").unwrap();
    let started = Instant::now();
    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(&src).arg("-o").arg(&out),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains("did not listen on a TCP socket within 5 s"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));

    // A core outside this process's CPU affinity (as on a batch scheduler's allocation).
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if online < 2 {
        skip("the CPU affinity case needs a second core", None);
    } else if require("taskset") {
        let run = run_with_input(
            Command::new("taskset")
                .args(["-c", "0"])
                .arg(fuzzer())
                .arg("--src-dir")
                .arg(pserv_src())
                .args(["--cores", "1"]),
            b"",
            Duration::from_secs(20),
        );
        assert_eq!(run.code(), Some(1), "{run:?}");
        assert!(run.stderr.contains("may not run on core 1, only on 0 (its CPU affinity"), "{}", run.stderr);
    }

    // A fixed port, without network namespaces: the copies of the server (per core, and the
    // CmpLog tracer) would collide. (With them, `tests/servers.rs` fuzzes such a server.)
    let fixed = free_port();
    let run = run_with_input(
        Command::new(fuzzer())
            .env("SOCKFUZZ_NETNS", "0")
            .arg("--src-dir")
            .arg(pserv_src())
            .arg("-o")
            .arg(&out)
            .arg(format!("--server-args=-p {fixed} -R {{root}}")),
        b"",
        Duration::from_secs(60),
    );
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(run.stderr.contains(&format!("the server listened on port {fixed}, not on the port the fuzzer chose")));
    assert!(run.stderr.contains("have no {port}"), "{}", run.stderr);
}

#[test]
fn drives_a_server_built_by_afl_clang_fast() {
    let Some(server) = afl_clang_fast_pserv(&[]) else { return };
    let _guard = exclusive();
    let out = scratch_dir("afl-out").join("out");
    let run = run_with_input(
        Command::new(fuzzer()).arg("--server").arg(&server).arg("-o").arg(&out).args(["-d", "10", THREAD_MODEL]),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let seeds = std::fs::read_dir(repo().join("seeds/requests")).unwrap().count();
    let queue = findings(&out.join("fuzz0/queue")).len();
    assert!(queue > seeds, "no new coverage found: {queue} queue entries for {seeds} seeds");
    assert!(!findings(&out.join("fuzz0/crashes")).is_empty(), "no crash found in the AFL++-built server");
}

#[test]
fn stop_on_crash_ends_the_run_at_the_first_crash_with_a_custom_root() {
    let _guard = exclusive();
    let src = pserv_copy();
    let root = scratch_dir("stop-root");
    copy_dir(&www(), &root);
    std::fs::write(root.join("only-here.html"), "custom root\n").unwrap();
    let out = scratch_dir("stop-out").join("out");
    let started = Instant::now();
    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(&src).arg("-o").arg(&out).arg("--root").arg(&root).args([
            "-d",
            "600",
            "--stop-on-crash",
            THREAD_MODEL,
        ]),
        b"",
        Duration::from_secs(300),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    assert!(started.elapsed() < Duration::from_secs(240), "did not stop at the first crash");
    assert!(!findings(&out.join("fuzz0/crashes")).is_empty());
    assert!(out.join("fuzz0/root/only-here.html").is_file(), "the client does not serve a copy of --root");
}

/// The spin verdict as a campaign's runs have it (the fuzzer's coverage map, and its control
/// page with a bound of 5 ms): a parser loop that never ends (`-x scan-loop`) is a spin within
/// milliseconds in every model, while the same request well formed is served; a 10 MB file
/// read and sent, and every seed on the ASan build, are served and never cut.
#[test]
fn a_parser_loop_that_never_ends_is_a_spin_in_milliseconds_and_real_work_is_not() {
    use crate::util::forkserver::{ShmMap, ASAN_OPTIONS};
    let c = campaign();
    let (map, control) = (ShmMap::new(1 << 16), ShmMap::new(8));
    control.write(4, &5000u32.to_ne_bytes());
    let root = scratch_dir("spin-root");
    copy_dir(&www(), &root);
    let big: Vec<u8> = (0..10u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let run = |binary: &str, args: &[&str], input: &[u8]| {
        let port = free_port().to_string();
        let mut cmd = Command::new(c.out.join(binary));
        cmd.args(["-p", &port, "-R"]).arg(&root).arg("-s").args(args);
        cmd.env("LD_PRELOAD", preload())
            .env("__AFL_SHM_ID", map.id.to_string())
            .env("SOCKFUZZ_CONTROL_SHM", control.id.to_string())
            .env("SOCKFUZZ_OUTPUT", "0")
            .env("ASAN_OPTIONS", ASAN_OPTIONS);
        let started = Instant::now();
        let run = run_with_input(&mut cmd, input, Duration::from_secs(30));
        (run.code(), started.elapsed())
    };
    let header = |line: &str| format!("GET /index.html HTTP/1.0\r\n{line}\r\n\r\n").into_bytes();
    for model in MODELS {
        let (code, took) = run("server-fuzz", &["-m", model, "-x", "scan-loop"], &header("Bad Header: x"));
        assert_eq!(code, Some(EXIT_SPIN), "{model}");
        // Start-up and a bound and a half, with room for a loaded machine.
        assert!(took < Duration::from_millis(1500), "{model}: the spin took {took:?} to end");
        let (code, _) = run("server-fuzz", &["-m", model, "-x", "scan-loop"], &header("Good-Header: x"));
        assert_eq!(code, Some(0), "{model}: a well-formed header");
    }
    let seeds: Vec<PathBuf> = std::fs::read_dir(repo().join("seeds/requests"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "req"))
        .collect();
    assert!(seeds.len() > 10, "{seeds:?}");
    for binary in ["server-fuzz", "server-fuzz-address"] {
        for model in ["iterative", "thread", "fork"] {
            let (code, _) = run(binary, &["-m", model], b"GET /big.bin HTTP/1.0\r\n\r\n");
            assert_eq!(code, Some(0), "{binary} -m {model}: 10 MB");
        }
        for seed in &seeds {
            let (code, _) = run(binary, &["-m", "thread"], &std::fs::read(seed).unwrap());
            assert_ne!(code, Some(EXIT_SPIN), "{binary}: {seed:?}");
        }
    }
}
