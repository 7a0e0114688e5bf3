//! The gdb service of the fuzzer library: the backtrace of a crash (triage, for builds without
//! AddressSanitizer) and the stacks of a hung server, on the sample server.
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use fuzzer::gdb::crash_backtrace;
use fuzzer::gdb::stacks::{attach_stacks, parse_backtrace};
use fuzzer::runner::Limits;

use crate::util;

#[test]
fn crash_backtrace_goes_through_the_crashing_function() {
    if !util::require("gdb") {
        return;
    }
    let server = util::pserv();
    let www = server.with_file_name("www");
    let input = std::fs::read(server.with_file_name("bugs").join("reqline-strtok.req")).unwrap();
    let limits = Limits { listen: Duration::from_secs(5), run: Duration::from_secs(5), mem_mb: 0, stacks: None };
    for model in ["iterative", "fork"] {
        let command: Vec<OsString> = [server.as_os_str(), "-p".as_ref(), util::free_port().to_string().as_ref()]
            .into_iter()
            .map(OsString::from)
            .chain(["-R".into(), www.clone().into(), "-s".into(), "-m".into(), model.into()])
            .collect();
        let text = crash_backtrace(&command, &[], None, &input, limits).unwrap();
        assert!(text.contains("SIGSEGV"), "{model}: {text}");
        let threads = parse_backtrace(&text);
        assert_eq!(threads.len(), 1, "{model}: {text}");
        let serve_one = threads[0].iter().find(|f| f.function == "serve_one");
        assert_eq!(serve_one.and_then(|f| f.file.as_deref()), Some("http.c"), "{model}: {text}");
    }
}

#[test]
fn attach_stacks_leaves_the_server_running() {
    if !util::require("gdb") {
        return;
    }
    let server = util::pserv();
    let port = util::free_port();
    let mut child = Command::new(&server)
        .args(["-p", &port.to_string(), "-R"])
        .arg(server.with_file_name("www"))
        .args(["-s", "-m", "pool"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    util::wait_listening(port, Duration::from_secs(5));
    let pid = child.id() as i32;
    let text = attach_stacks(pid);
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let answers = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    util::kill_group(&mut child);
    let text = text.expect("gdb could not attach (ptrace not permitted?)");
    let threads = parse_backtrace(&text);
    assert!(threads.len() >= 2, "{text}");
    assert!(threads.iter().flatten().any(|f| f.function == "pool_worker"), "{text}");
    assert!(threads.iter().flatten().any(|f| f.function == "main"), "{text}");
    let state = state.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
    assert_eq!(state, Some("S"), "not left waiting as it was");
    assert!(answers);
}
