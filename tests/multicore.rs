//! Several clients (one per core), a client restarted after dying, two campaigns joined over
//! loopback (LibAFL broker to broker), AFL++ sync folders, and the CPU budget.

use crate::util::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The names of the finding files of a folder.
fn entries(dir: &Path) -> Vec<String> {
    findings(dir).iter().map(|p| file_name(p)).collect()
}

#[test]
fn two_cores_share_entries_survive_a_killed_client_and_stop_on_ctrl_c() {
    let _guard = exclusive();
    let out = scratch_dir("mc-out").join("out");
    let mut cmd = Command::new(fuzzer());
    cmd.arg("--src-dir").arg(pserv_copy()).arg("-o").arg(&out).args(["--cores", "0-1", "-d", "600", THREAD_MODEL]);
    let mut child = spawn(&mut cmd);
    let stdout = collect(child.stdout.take().unwrap());
    let stderr = collect(child.stderr.take().unwrap());
    let (fuzz0, fuzz1) = (out.join("fuzz0"), out.join("fuzz1"));
    wait_until(Duration::from_secs(120), "both clients' stats", || {
        stat(&fuzz0, "execs_done").is_some() && stat(&fuzz1, "execs_done").is_some()
    });

    // A client killed like the OOM killer does is restarted with its queue.
    std::thread::sleep(Duration::from_secs(5));
    let old_pid = stat(&fuzz0, "fuzzer_pid").unwrap();
    let queue_before = entries(&fuzz0.join("queue"));
    // SAFETY: signalling the client process this test's fuzzer started.
    unsafe { libc::kill(old_pid as i32, libc::SIGKILL) };
    wait_until(Duration::from_secs(60), "the restarted client", || {
        stat(&fuzz0, "fuzzer_pid").is_some_and(|p| p != old_pid)
    });
    let queue_after = entries(&fuzz0.join("queue"));
    assert!(queue_before.iter().all(|n| queue_after.contains(n)), "the restarted client lost queue entries");

    wait_until(Duration::from_secs(60), "imports in both clients", || {
        stat(&fuzz0, "corpus_imported").unwrap_or(0) > 0 && stat(&fuzz1, "corpus_imported").unwrap_or(0) > 0
    });
    std::thread::sleep(Duration::from_secs(5));
    // SAFETY: Ctrl-C to the process group this test created.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let status = wait_for(&mut child, Duration::from_secs(5));
    if status.is_none() {
        kill_group(&mut child);
    }
    let stdout = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
    assert!(
        status.is_some(),
        "still running after Ctrl-C: {stdout}\n{}",
        String::from_utf8_lossy(&stderr.join().unwrap())
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(processes_under(&out), Vec::<i32>::new(), "target processes left after Ctrl-C");

    for dir in [&fuzz0, &fuzz1] {
        let queue = entries(&dir.join("queue"));
        assert!(queue.iter().any(|n| n.contains(",sync:")), "{dir:?} imported nothing: {queue:?}");
        assert!(queue.iter().any(|n| n.contains(",op:havoc")), "{dir:?} found nothing itself");
    }
    // The summary counts the ASan clients' crashes too.
    let crashes: usize = ["fuzz0", "fuzz1", "fuzz0-asan", "fuzz1-asan"]
        .iter()
        .map(|d| entries(&out.join(d).join("crashes")).len())
        .sum();
    assert!(crashes > 0);
    assert!(stdout.contains(&format!("Found {crashes} crash")), "{stdout}");
    assert!(stdout.contains("] + ") || stdout.contains(" + "), "no per-client speeds in the status: {stdout}");
}

#[test]
fn two_campaigns_on_loopback_share_one_corpus() {
    let _guard = exclusive();
    let port = free_port();
    let (out_a, out_b) = (scratch_dir("b2b-a").join("out"), scratch_dir("b2b-b").join("out"));
    let seeds_b = scratch_dir("b2b-seeds");
    std::fs::copy(pserv_src().join("benign/get-index.req"), seeds_b.join("get-index.req")).unwrap();
    let mut a = Command::new(fuzzer());
    a.arg("--src-dir").arg(pserv_copy()).arg("-o").arg(&out_a).args([
        "--cores",
        "0",
        "-d",
        "40",
        "--broker-port",
        &port.to_string(),
        // The corpus sharing is under test, not the triage that would follow both campaigns.
        "--no-triage",
        THREAD_MODEL,
    ]);
    let mut a = spawn(&mut a);
    let a_out = collect(a.stdout.take().unwrap());
    wait_until(Duration::from_secs(120), "campaign A", || stat(&out_a.join("fuzz0"), "execs_done").is_some());
    // B starts from one seed on the other core and joins A's broker.
    let b = run_with_input(
        Command::new(fuzzer())
            .arg("--src-dir")
            .arg(pserv_copy())
            .arg("-o")
            .arg(&out_b)
            .arg("--seeds")
            .arg(&seeds_b)
            .args([
                "--cores",
                "1",
                "-d",
                "15",
                "--remote-broker",
                &format!("127.0.0.1:{port}"),
                "--no-triage",
                THREAD_MODEL,
            ]),
        b"",
        Duration::from_secs(180),
    );
    let a_status = wait_for(&mut a, Duration::from_secs(120));
    kill_group(&mut a);
    assert_eq!(b.code(), Some(0), "{}\n{}", b.stdout_text(), b.stderr);
    assert!(
        a_status.is_some_and(|s| s.success()),
        "campaign A did not end by itself: {}",
        String::from_utf8_lossy(&a_out.join().unwrap())
    );
    // Each campaign has a single client: what it imported came from the other campaign.
    assert!(stat(&out_b.join("fuzz0"), "corpus_imported").unwrap() > 0, "B imported nothing from A");
    assert!(stat(&out_a.join("fuzz0"), "corpus_imported").unwrap() > 0, "A imported nothing from B");
    assert!(entries(&out_b.join("fuzz0/queue")).iter().any(|n| n.contains(",sync:")));
}

#[test]
fn afl_sync_dir_entries_are_imported() {
    let _guard = exclusive();
    let afl = scratch_dir("afl-sync");
    std::fs::create_dir_all(afl.join("secondary/queue")).unwrap();
    std::fs::copy(
        pserv_src().join("benign/login.req"),
        afl.join("secondary/queue/id:000000,time:0,execs:0,orig:login"),
    )
    .unwrap();
    let seeds = scratch_dir("sync-seeds");
    std::fs::copy(pserv_src().join("benign/get-index.req"), seeds.join("get-index.req")).unwrap();
    let out = scratch_dir("sync-out").join("out");
    let run = run_with_input(
        Command::new(fuzzer())
            .arg("--src-dir")
            .arg(pserv_copy())
            .arg("-o")
            .arg(&out)
            .arg("--seeds")
            .arg(&seeds)
            .arg("--sync-dir")
            .arg(&afl)
            .args(["-d", "5", "--no-grammar", THREAD_MODEL]),
        b"",
        Duration::from_secs(120),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let login = std::fs::read(pserv_src().join("benign/login.req")).unwrap();
    let queue = out.join("fuzz0/queue");
    let imported = entries(&queue).into_iter().any(|n| std::fs::read(queue.join(&n)).unwrap() == login);
    assert!(imported, "the AFL++ queue entry was not imported: {:?}", entries(&queue));
}

#[test]
fn core_broker_and_budget_limits() {
    let n = std::thread::available_parallelism().unwrap().get();
    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(pserv_src()).args(["--cores", &format!("0-{n}")]),
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(run.code(), Some(1));
    assert!(run.stderr.contains(&format!("this machine has {n} core(s)")), "{}", run.stderr);

    let busy = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = scratch_dir("busy-out").join("out");
    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(pserv_src()).arg("-o").arg(&out).args(["--broker-port", &port]),
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(run.code(), Some(1));
    assert!(run.stderr.contains("is busy"), "{}", run.stderr);

    let _guard = exclusive();
    let out = scratch_dir("budget-out").join("out");
    let started = Instant::now();
    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(pserv_copy()).arg("-o").arg(&out).args([
            "-j",
            "2",
            "-d",
            "600",
            "--cpu-budget",
            "8",
            THREAD_MODEL,
        ]),
        b"",
        Duration::from_secs(180),
    );
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    assert!(
        run.stdout_text().contains("[limits] 2 core(s) x 600 s exceeds the CPU budget of 8 s: fuzzing for 4 s"),
        "{}",
        run.stdout_text()
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn a_second_campaign_takes_the_free_core() {
    let _guard = exclusive();
    // The cores this process may run on (its affinity mask).
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        skip("needs two cores this process may use", None);
        return;
    }
    let first = scratch_dir("free-core-a").join("out");
    let mut a = spawn(
        Command::new(fuzzer())
            .arg("--src-dir")
            .arg(pserv_copy())
            .arg("-o")
            .arg(&first)
            .args(["-d", "60", "--sanitizer", "none", "--no-cmplog", "--no-triage", THREAD_MODEL])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_until(Duration::from_secs(120), "the first campaign's fuzzer_stats", || {
        stat(&first.join("fuzz0"), "cpu_affinity").is_some()
    });
    let second = scratch_dir("free-core-b").join("out");
    let run = run_with_input(
        Command::new(fuzzer()).arg("--server").arg(first.join("server-fuzz")).arg("-o").arg(&second).args([
            "-d",
            "3",
            "--sanitizer",
            "none",
            "--no-cmplog",
            "--no-triage",
            THREAD_MODEL,
        ]),
        b"",
        Duration::from_secs(60),
    );
    kill_group(&mut a);
    assert_eq!(run.code(), Some(0), "{}\n{}", run.stdout_text(), run.stderr);
    let (a_core, b_core) = (stat(&first.join("fuzz0"), "cpu_affinity"), stat(&second.join("fuzz0"), "cpu_affinity"));
    assert_ne!(a_core, b_core, "{}", run.stdout_text());
    let passed = format!("[cores] passed over busy core(s): {}", a_core.unwrap());
    assert!(run.stdout_text().contains(&passed), "{}", run.stdout_text());
}
