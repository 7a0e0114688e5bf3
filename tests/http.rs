//! HTTP intelligence end to end: grammar seeds the sample server answers, and the options
//! that switch grammar, dictionary and HTTP mutators.

mod common;
use common::*;
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
    let (out, queue) = campaign(&["--no-grammar", "--no-dict", "--no-http-mutators", "-x", dict.to_str().unwrap()]);
    assert!(!queue.iter().any(|n| n.contains(",orig:grammar-")), "grammar seeds despite --no-grammar");
    assert!(!out.join("http.dict").exists());
    let (_, queue) = campaign(&["--grammar-seeds", "5"]);
    assert_eq!(queue.iter().filter(|n| n.contains(",orig:grammar-")).count(), 5);

    let run = run_with_input(
        Command::new(fuzzer()).arg("--src-dir").arg(&src).args(["-x", "/nonexistent.dict"]),
        b"",
        Duration::from_secs(20),
    );
    assert!(run.stderr.contains("the dictionary /nonexistent.dict does not exist"), "{}", run.stderr);
}
