//! A test that cannot run here says so as skipped, never as passed.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Whether `tool` is on PATH. When it is not, the calling test (or the part of it that needs
/// the tool) is skipped through [`skip`], which names the package to install.
pub fn require(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let executable = |p: PathBuf| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if std::env::split_paths(&path).any(|dir| executable(dir.join(tool))) {
        return true;
    }
    let package = match tool {
        "afl-fuzz" | "afl-clang-fast" => "afl++",
        "nm" => "binutils",
        "timeout" => "coreutils",
        "taskset" => "util-linux",
        other => other,
    };
    skip(&format!("`{tool}` is not on PATH"), Some(&format!("apt-get install {package}")));
    false
}

/// The calling test, or a part of it, cannot run here: `why`, and `fix`, what would let it run
/// (None for what the machine lacks: a second core, IPv6, network namespaces). Cargo counts a
/// test that returns early as passed, so the skip is said on stderr and appended to the file
/// named by SOCKFUZZ_SKIP_LOG (one `binary::test<TAB>reason` line), where scripts/test counts
/// it as skipped. With CI set, a skip that has a fix fails the test instead: .ci/run installs
/// every tool the tests use, so a missing one there is a broken CI, not a machine's limit.
pub fn skip(why: &str, fix: Option<&str>) {
    // libtest runs each test in a thread named after it.
    let thread = std::thread::current();
    let test = format!("{}::{}", env!("CARGO_CRATE_NAME"), thread.name().unwrap_or("?"));
    let reason = match fix {
        Some(fix) => format!("{why} (fix: {fix})"),
        None => why.to_string(),
    };
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    if ci && fix.is_some() {
        panic!("{test} cannot run: {reason}; CI is set, and .ci/run should have installed it");
    }
    eprintln!("SKIPPED {test}: {reason}");
    if let Some(log) = std::env::var_os("SOCKFUZZ_SKIP_LOG") {
        // One write of one short line to an O_APPEND file: lines of parallel tests do not mix.
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        file.write_all(format!("{test}\t{reason}\n").as_bytes()).unwrap();
    }
}
