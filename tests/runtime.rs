//! Tests of the target runtime (`runtime/`, linked into C programs) and of the compiler wrapper
//! `fuzzer-cc`, on a tiny C program: plain runs, crashes, the AFL++ fork-server protocol spoken
//! by hand, the deferred start, (if installed) a short afl-fuzz run, and the CmpLog map the
//! runtime and the preload fill, read back with libafl_targets' `AflppCmpLogMap`.
//!
//! Needs `cargo build --release --workspace` first: the wrapper finds `libruntime.a` next to
//! itself. What needs a missing gcc, clang, nm or afl-fuzz is skipped (`util::require`).

use crate::util::forkserver::{forkserver_fds, hello_map_size, pipe, read_u32, ShmMap, Target, ASAN_OPTIONS};
use crate::util::{preload, require, run_with_input, scratch_dir, stat_value, wait_timeout, Run};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// Reads stdin, branches on its bytes, dereferences NULL on input starting with "CRASH".
const PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int *volatile null_pointer; /* volatile: the compiler cannot see the crash coming */

int main(void) {
    char buf[256];
    ssize_t n = read(0, buf, sizeof buf - 1);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    if (n >= 5 && memcmp(buf, "CRASH", 5) == 0)
        *null_pointer = 1;
    int score = 0;
    if (buf[0] == 'G') {
        score += 1;
        if (buf[1] == 'E') {
            score += 2;
            if (buf[2] == 'T')
                score += 4;
        }
    } else if (buf[0] == 'P') {
        score += 8;
        if (buf[1] == 'O')
            score += 16;
    }
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == ' ')
            score += 32;
    printf("score %d\n", score);
    return 0;
}
"#;

const GET: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
const POST: &[u8] = b"POST /x";
const CRASH: &[u8] = b"CRASH!";

// ---------------------------------------------------------------------------------------------
// Helpers: building through the wrapper, bounded runs.

fn wrapper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fuzzer-cc"))
}

/// The wrapper with a clean environment: the given compiler, optionally ASan.
fn fuzzer_cc(dir: &Path, compiler: &str, asan: bool) -> Command {
    let runtime = wrapper().with_file_name("libruntime.a");
    assert!(runtime.is_file(), "{} missing: run `cargo build --release --workspace` first", runtime.display());
    let mut cmd = Command::new(wrapper());
    cmd.current_dir(dir)
        .env("FUZZER_CC_COMPILER", compiler)
        .env_remove("FUZZER_RUNTIME_LIB")
        .env_remove("FUZZER_CC_DEBUG")
        .env_remove("FUZZER_CC_SANITIZER");
    if asan {
        cmd.env("FUZZER_CC_SANITIZER", "address");
    }
    cmd
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("cannot run command");
    assert!(out.status.success(), "{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// Build `PROGRAM` in `dir` with `compiler` through the wrapper: in one command
/// (`cc prog.c -o bin`) or as compile then link (`cc -c`, `cc prog.o`).
fn build_program(dir: &Path, compiler: &str, asan: bool, one_shot: bool) -> PathBuf {
    build_source(dir, PROGRAM, compiler, asan, one_shot)
}

fn build_source(dir: &Path, source: &str, compiler: &str, asan: bool, one_shot: bool) -> PathBuf {
    std::fs::write(dir.join("prog.c"), source).unwrap();
    let bin = dir.join(if one_shot { "prog-one-shot" } else { "prog-two-step" });
    if one_shot {
        run_ok(fuzzer_cc(dir, compiler, asan).args(["-O1", "prog.c", "-o"]).arg(&bin));
    } else {
        run_ok(fuzzer_cc(dir, compiler, asan).args(["-O1", "-c", "prog.c", "-o", "prog.o"]));
        run_ok(fuzzer_cc(dir, compiler, asan).args(["prog.o", "-o"]).arg(&bin));
    }
    eprintln!("built {} ({compiler}, asan={asan}): {} bytes", bin.display(), bin.metadata().unwrap().len());
    bin
}

/// Run `bin` once with `input` on stdin, outside any fuzzer.
fn run_plain(bin: &Path, input: &[u8]) -> ExitStatus {
    let mut cmd = Command::new(bin);
    cmd.env_remove("__AFL_SHM_ID").env_remove("__AFL_DEFER_FORKSRV").env("ASAN_OPTIONS", ASAN_OPTIONS);
    run_bounded(&mut cmd, input, Duration::from_secs(10)).status.unwrap()
}

/// [`run_with_input`], where a run still going at `limit` (then killed) fails the test.
fn run_bounded(cmd: &mut Command, input: &[u8], limit: Duration) -> Run {
    let run = run_with_input(cmd, input, limit);
    assert!(run.status.is_some(), "{cmd:?} did not finish within {limit:?}");
    run
}

/// The crash signal we accept: SIGSEGV, or SIGABRT under ASan (`abort_on_error=1`).
fn is_crash_signal(signal: i32, asan: bool) -> bool {
    signal == libc::SIGSEGV || (asan && signal == libc::SIGABRT)
}

// ---------------------------------------------------------------------------------------------
// Plain runs: normal exit, crashes stay signals (with and without ASan), both build styles.

fn check_plain_runs(compiler: &str, asan: bool) {
    let dir = scratch_dir(&format!("plain-{compiler}-{}", if asan { "asan" } else { "noasan" }));
    for one_shot in [true, false] {
        let bin = build_program(&dir, compiler, asan, one_shot);
        let ok = run_plain(&bin, GET);
        assert_eq!(ok.code(), Some(0), "{}: normal input: {ok:?}", bin.display());
        let crash = run_plain(&bin, CRASH);
        let signal = crash.signal().unwrap_or_else(|| panic!("{}: crash input exited with {crash:?}", bin.display()));
        assert!(is_crash_signal(signal, asan), "{}: crash input died of signal {signal}", bin.display());
    }
}

#[test]
fn gcc_build_runs_and_crashes_with_sigsegv() {
    if require("gcc") {
        check_plain_runs("gcc", false);
    }
}

#[test]
fn clang_build_runs_and_crashes_with_sigsegv() {
    if require("clang") {
        check_plain_runs("clang", false);
    }
}

#[test]
fn gcc_asan_build_runs_and_crashes_with_a_signal() {
    if require("gcc") {
        check_plain_runs("gcc", true);
    }
}

#[test]
fn clang_asan_build_runs_and_crashes_with_a_signal() {
    if require("clang") {
        check_plain_runs("clang", true);
    }
}

// ---------------------------------------------------------------------------------------------
// The fork-server protocol, spoken by the test.

fn check_fork_server(compiler: &str, asan: bool) {
    let dir = scratch_dir(&format!("forksrv-{compiler}-{}", if asan { "asan" } else { "noasan" }));
    let bin = build_program(&dir, compiler, asan, false);
    let mut target = Target::start(&bin, &dir, &[]);
    let hello = target.hello().expect("no hello from the fork server");
    let map_size = hello_map_size(hello);
    eprintln!("{compiler} asan={asan}: hello {hello:#010x}, map size {map_size}");
    if compiler == "gcc" {
        assert_eq!(map_size, 1 << 16, "trace-pc uses the 64 KiB AFL map");
    } else {
        assert!(map_size.is_multiple_of(64) && (64..1 << 16).contains(&map_size), "guards: map size {map_size}");
    }

    let (pid1, status1, get1) = target.run(GET, map_size);
    let (pid2, status2, get2) = target.run(GET, map_size);
    let (pid3, status3, post) = target.run(POST, map_size);
    let (pid4, status4, _) = target.run(CRASH, map_size);
    let fork_server = target.child.id() as i32;
    for pid in [pid1, pid2, pid3, pid4] {
        assert!(pid > 0 && pid != fork_server, "bad child pid {pid}");
    }
    assert!(pid1 != pid2 && pid2 != pid3 && pid3 != pid4, "each run is a new child");
    for status in [status1, status2, status3] {
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "status {status:#x}");
    }
    assert!(libc::WIFSIGNALED(status4), "crash input: status {status4:#x}");
    assert!(is_crash_signal(libc::WTERMSIG(status4), asan), "crash input: signal {}", libc::WTERMSIG(status4));

    let edges = |map: &[u8]| map.iter().filter(|&&b| b != 0).count();
    assert!(edges(&get1) > 0, "no coverage recorded");
    assert_eq!(get1, get2, "the same input gave different maps");
    assert_ne!(get1, post, "different inputs gave the same map");
    eprintln!("{compiler} asan={asan}: GET covers {} map entries, POST {}", edges(&get1), edges(&post));

    drop(target); // closes the control pipe
}

#[test]
fn gcc_fork_server_protocol() {
    if require("gcc") {
        check_fork_server("gcc", false);
    }
}

#[test]
fn clang_fork_server_protocol() {
    if require("clang") {
        check_fork_server("clang", false);
    }
}

/// Under ASan the sanitizer runtime has weak no-op coverage callbacks: ours must win.
#[test]
fn clang_asan_fork_server_protocol() {
    if require("clang") {
        check_fork_server("clang", true);
    }
}

#[test]
fn gcc_asan_fork_server_protocol() {
    if require("gcc") {
        check_fork_server("gcc", true);
    }
}

#[test]
fn fork_server_exits_when_the_fuzzer_closes_the_control_pipe() {
    if !require("gcc") {
        return;
    }
    let dir = scratch_dir("forksrv-exit");
    let bin = build_program(&dir, "gcc", false, false);
    let mut target = Target::start(&bin, &dir, &[]);
    target.hello().expect("no hello");
    drop(target.control.take());
    let status = wait_timeout(&mut target.child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// The fork server gets SIGKILL when its parent dies (PR_SET_PDEATHSIG): here the parent is a
/// shell that exits while we still hold the control pipe open.
#[test]
fn fork_server_dies_with_its_parent() {
    if !require("gcc") {
        return;
    }
    let dir = scratch_dir("forksrv-orphan");
    let bin = build_program(&dir, "gcc", false, false);
    let script = format!("'{}' & sleep 0.3", bin.display());
    let map = ShmMap::new(1 << 16);
    let (control_read, _control_write) = pipe();
    let (mut status_read, status_write) = pipe();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]).env("__AFL_SHM_ID", map.id.to_string()).env_remove("__AFL_DEFER_FORKSRV");
    forkserver_fds(&mut cmd, &control_read, &status_write);
    let mut shell = cmd.spawn().unwrap();
    drop((control_read, status_write));
    assert!(read_u32(&mut status_read, Duration::from_secs(10)).is_some(), "no hello");
    wait_timeout(&mut shell, Duration::from_secs(5));
    // The fork server blocks reading fd 198 (we keep it open): only its death closes fd 199.
    assert_eq!(read_u32(&mut status_read, Duration::from_secs(5)), None, "fork server still talking");
}

// ---------------------------------------------------------------------------------------------
// Deferred start, exported symbols, marker strings, coverage without a fork server.

#[test]
fn deferred_fork_server_waits_for_manual_init() {
    if !require("gcc") {
        return;
    }
    let dir = scratch_dir("deferred");
    let bin = build_program(&dir, "gcc", false, false);
    let mut target = Target::start(&bin, &dir, &[("__AFL_DEFER_FORKSRV", "1")]);
    target.input.write_all_at(GET, 0).unwrap();
    // Nobody calls __afl_manual_init: the program just runs to the end, closing fd 199 unused.
    assert_eq!(target.hello(), None, "a hello arrived although the start is deferred");
    let status = wait_timeout(&mut target.child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status:?}");
    let stdout = std::fs::read_to_string(dir.join("stdout")).unwrap();
    assert!(stdout.starts_with("score "), "program output: {stdout:?}");
}

/// What the LD_PRELOAD library does: look the start function up with dlsym and call it.
const DEFERRED_PROGRAM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    puts("before the fork server");
    fflush(stdout);
    void (*start)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "__afl_manual_init");
    if (!start)
        return 3;
    start();
    char c = 0;
    if (read(0, &c, 1) == 1 && c == 'A')
        puts("A");
    else
        puts("not A");
    return 0;
}
"#;

#[test]
fn deferred_fork_server_starts_when_the_start_function_is_called() {
    if !require("gcc") {
        return;
    }
    let dir = scratch_dir("deferred-start");
    let bin = build_source(&dir, DEFERRED_PROGRAM, "gcc", false, true);
    let mut target = Target::start(&bin, &dir, &[("__AFL_DEFER_FORKSRV", "1")]);
    let map_size = hello_map_size(target.hello().expect("no hello after __afl_manual_init"));
    let (_, status_a, map_a) = target.run(b"A", map_size);
    let (_, status_b, map_b) = target.run(b"B", map_size);
    assert!(status_a == 0 && status_b == 0, "statuses {status_a:#x} {status_b:#x}");
    assert_ne!(map_a, map_b, "the branch after the start point is not covered");
    drop(target);
    let stdout = std::fs::read_to_string(dir.join("stdout")).unwrap();
    assert_eq!(stdout.matches("before the fork server").count(), 1, "code before the start ran again:\n{stdout}");
    assert!(stdout.contains("\nA\n") && stdout.contains("not A"), "{stdout}");
}

#[test]
fn start_functions_are_exported_and_markers_present() {
    if !require("gcc") {
        return;
    }
    let dir = scratch_dir("exports");
    let bin = build_program(&dir, "gcc", false, true);
    let bytes = std::fs::read(&bin).unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"__AFL_SHM_ID\0"), "afl-fuzz's instrumentation marker is missing");
    assert!(!contains(b"##SIG_AFL_DEFER_FORKSRV##"), "deferred-start signature must not be embedded");
    if !require("nm") {
        return;
    }
    let out = run_ok(Command::new("nm").arg("-D").arg("--defined-only").arg(&bin));
    let symbols = String::from_utf8_lossy(&out.stdout);
    for name in ["__afl_manual_init", "sockfuzz_start_forkserver"] {
        assert!(symbols.lines().any(|l| l.ends_with(&format!(" T {name}"))), "{name} not exported:\n{symbols}");
    }
}

/// afl-showmap / afl-tmin run the program without a fork server and read the map afterwards.
#[test]
fn shm_map_is_filled_without_a_fork_server() {
    if !require("gcc") {
        return;
    }
    let dir = scratch_dir("showmap");
    let bin = build_program(&dir, "gcc", false, false);
    let map = ShmMap::new(1 << 16);
    let run = run_bounded(Command::new(&bin).env("__AFL_SHM_ID", map.id.to_string()), GET, Duration::from_secs(5));
    assert_eq!(run.code(), Some(0));
    assert!(map.read(1 << 16).iter().any(|&b| b != 0), "no coverage in the shared map");
}

// ---------------------------------------------------------------------------------------------
// The wrapper's command lines and errors.

/// The final command the wrapper runs (`FUZZER_CC_DEBUG=1`), and whether it succeeded.
fn wrapper_command(dir: &Path, compiler: &str, args: &[&str], env: &[(&str, &str)]) -> (String, bool) {
    std::fs::write(dir.join("prog.c"), PROGRAM).unwrap();
    let out = fuzzer_cc(dir, compiler, false)
        .args(args)
        .envs(env.iter().copied())
        .env("FUZZER_CC_DEBUG", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (stderr, out.status.success())
}

#[test]
fn wrapper_flags_per_step() {
    if !require("gcc") {
        return;
    }
    let dir = scratch_dir("flags");
    let (compile, ok) = wrapper_command(&dir, "gcc", &["-c", "prog.c", "-o", "prog.o"], &[]);
    assert!(ok, "{compile}");
    assert!(compile.contains(" -g -fsanitize-coverage=trace-pc"), "{compile}");
    assert!(!compile.contains("libruntime.a"), "runtime on a compile line: {compile}");

    let (link, ok) = wrapper_command(&dir, "gcc", &["prog.c", "-o", "prog"], &[("FUZZER_CC_SANITIZER", "address")]);
    assert!(ok, "{link}");
    for flag in [
        "-fsanitize-coverage=trace-pc",
        "-fsanitize=address",
        "libruntime.a",
        "-Wl,-u,__sockfuzz_init",
        "-Wl,--export-dynamic-symbol=__afl_manual_init",
        "-lpthread",
    ] {
        assert!(link.contains(flag), "{flag} missing: {link}");
    }

    let (version, ok) = wrapper_command(&dir, "gcc", &["--version"], &[]);
    assert!(ok && !version.contains("-fsanitize") && !version.contains("libruntime"), "{version}");

    if !require("clang") {
        return;
    }
    let (compile, ok) = wrapper_command(&dir, "clang", &["-c", "prog.c"], &[]);
    assert!(ok && compile.contains("-fsanitize-coverage=trace-pc-guard"), "{compile}");
    let (link_only, ok) = wrapper_command(&dir, "clang", &["prog.o", "-o", "prog"], &[]);
    assert!(ok, "{link_only}");
    assert!(!link_only.contains("-fsanitize-coverage"), "coverage flag on a link-only line: {link_only}");
    assert!(link_only.contains("libruntime.a"), "{link_only}");
    let (one_shot, ok) = wrapper_command(&dir, "clang", &["prog.c", "-o", "prog"], &[]);
    assert!(ok && one_shot.contains("-fno-sanitize-link-runtime"), "UBSan runtime not kept out: {one_shot}");
}

#[test]
fn wrapper_reports_missing_compiler_and_runtime() {
    let dir = scratch_dir("errors");
    let (out, ok) = wrapper_command(&dir, "/nonexistent/cc", &["-c", "prog.c"], &[]);
    assert!(!ok && out.contains("compiler not found"), "{out}");
    if !require("gcc") {
        return;
    }
    let (out, ok) =
        wrapper_command(&dir, "gcc", &["prog.c", "-o", "prog"], &[("FUZZER_RUNTIME_LIB", "/nonexistent/libruntime.a")]);
    assert!(!ok && out.contains("cargo build --release --workspace"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// afl-fuzz 4.04c drives the clang build.

fn afl_stat<'a>(stats: &'a str, key: &str) -> &'a str {
    stat_value(stats, key).unwrap_or_else(|| panic!("{key} missing in fuzzer_stats:\n{stats}")).trim()
}

#[test]
fn afl_fuzz_finds_new_paths() {
    if !require("afl-fuzz") || !require("clang") || !require("timeout") {
        return;
    }
    let dir = scratch_dir("afl");
    let bin = build_program(&dir, "clang", false, false);
    let seeds = [("get", GET), ("put", b"PUT /" as &[u8])];
    std::fs::create_dir(dir.join("in")).unwrap();
    for (name, bytes) in seeds {
        std::fs::write(dir.join("in").join(name), bytes).unwrap();
    }
    let out = Command::new("timeout")
        .args(["-s", "KILL", "15", "afl-fuzz", "-V", "5", "-i", "in", "-o", "out", "--"])
        .arg(&bin)
        .current_dir(&dir)
        .envs([
            ("AFL_SKIP_CPUFREQ", "1"),
            ("AFL_NO_UI", "1"),
            ("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1"),
            ("AFL_NO_AFFINITY", "1"),
        ])
        .env_remove("__AFL_SHM_ID")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    let stats = std::fs::read_to_string(dir.join("out/default/fuzzer_stats"))
        .unwrap_or_else(|e| panic!("no fuzzer_stats ({e}); afl-fuzz said:\n{log}"));
    let execs: u64 = afl_stat(&stats, "execs_done").parse().unwrap();
    let corpus: usize = afl_stat(&stats, "corpus_count").parse().unwrap();
    eprintln!("afl-fuzz: execs_done {execs}, corpus_count {corpus}, stability {}", afl_stat(&stats, "stability"));
    assert!(execs > 0, "{stats}");
    assert!(corpus > seeds.len(), "no new paths: {stats}");
}

// ---------------------------------------------------------------------------------------------
// LibAFL 0.16's ForkserverExecutor accepts the hello, reads the map size and fuzzes.

/// Removes an environment variable of this process when dropped, even if the test fails.
struct Unset(&'static str);

impl Drop for Unset {
    fn drop(&mut self) {
        std::env::remove_var(self.0);
    }
}

#[test]
fn libafl_forkserver_executor_drives_the_runtime() {
    use libafl::corpus::{Corpus, InMemoryCorpus, Testcase};
    use libafl::events::NopEventManager;
    use libafl::executors::{forkserver::ForkserverExecutor, Executor, ExitKind, StdChildArgs};
    use libafl::feedbacks::{CrashFeedback, MaxMapFeedback};
    use libafl::fuzzer::{Fuzzer, StdFuzzer};
    use libafl::inputs::BytesInput;
    use libafl::mutators::{havoc_mutations, HavocScheduledMutator};
    use libafl::observers::{ConstMapObserver, HitcountsMapObserver};
    use libafl::schedulers::QueueScheduler;
    use libafl::stages::StdMutationalStage;
    use libafl::state::{HasCorpus, StdState};
    use libafl_bolts::fs::InputFile;
    use libafl_bolts::rands::StdRand;
    use libafl_bolts::shmem::{ShMem, ShMemProvider, UnixShMemProvider};
    use libafl_bolts::target_args::InputLocation;
    use libafl_bolts::tuples::tuple_list;
    use libafl_bolts::StdTargetArgs;

    const MAP: usize = 1 << 16;
    if !require("clang") {
        return;
    }
    let dir = scratch_dir("libafl");
    let bin = build_program(&dir, "clang", false, false);
    let mut provider = UnixShMemProvider::new().unwrap();
    let mut shmem = provider.new_shmem(MAP).unwrap();
    // SAFETY: the executor requires __AFL_SHM_ID in this process's environment; the runtime
    // tests set or remove it explicitly for the programs they start, and it is removed again
    // when this test ends (the other tests' servers would attach to a map gone by then).
    unsafe { shmem.write_to_env("__AFL_SHM_ID").unwrap() };
    let _unset = Unset("__AFL_SHM_ID");
    let map: &mut [u8; MAP] = (&mut *shmem).try_into().unwrap();
    let edges = HitcountsMapObserver::new(ConstMapObserver::<_, MAP>::new("edges", map));
    let mut feedback = MaxMapFeedback::new(&edges);
    let mut objective = CrashFeedback::new();
    let mut corpus = InMemoryCorpus::new();
    corpus.add(Testcase::new(BytesInput::new(b"GET /".to_vec()))).unwrap();
    let mut state =
        StdState::new(StdRand::with_seed(1), corpus, InMemoryCorpus::new(), &mut feedback, &mut objective).unwrap();
    let mut fuzzer = StdFuzzer::new(QueueScheduler::new(), feedback, objective);
    let mut mgr = NopEventManager::new();
    let input_file = InputFile::create(dir.join("cur_input")).unwrap();
    let mut executor = ForkserverExecutor::builder()
        .program(&bin)
        .env("ASAN_OPTIONS", ASAN_OPTIONS)
        .input(InputLocation::StdIn { input_file: Some(input_file) })
        .coverage_map_size(MAP)
        .timeout(Duration::from_secs(2))
        .build::<BytesInput, _, _>(tuple_list!(edges))
        .expect("LibAFL's ForkserverExecutor rejected the runtime");
    let reported = executor.coverage_map_size().expect("no map size from the hello");
    assert!(reported.is_multiple_of(64) && reported < MAP, "map size {reported}");

    let crash = executor.run_target(&mut fuzzer, &mut state, &mut mgr, &BytesInput::new(CRASH.to_vec())).unwrap();
    assert_eq!(crash, ExitKind::Crash);
    assert_eq!(libc::WTERMSIG(executor.forkserver().status()), libc::SIGSEGV);
    let ok = executor.run_target(&mut fuzzer, &mut state, &mut mgr, &BytesInput::new(GET.to_vec())).unwrap();
    assert_eq!(ok, ExitKind::Ok);

    let mut stages = tuple_list!(StdMutationalStage::new(HavocScheduledMutator::new(havoc_mutations())));
    fuzzer.fuzz_loop_for(&mut stages, &mut executor, &mut state, &mut mgr, 10).unwrap();
    let found = state.corpus().count();
    eprintln!("LibAFL: map size {reported}, corpus {found} after 10 stage runs");
    assert!(found > 1, "no new corpus entries");
}

// ---------------------------------------------------------------------------------------------
// CmpLog: the runtime's trace-cmp callbacks and the preload's string hooks fill the map in the
// layout LibAFL's AflppCmpLogMap reads.

/// A one-connection TCP server that compares a 4-byte magic (an integer compare) and a string
/// (strcmp) from the request, and answers how many matched.
const CMP_SERVER: &str = r#"
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* port 0: the kernel picks one */
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 8) != 0)
        return 2;
    for (;;) { /* like a real server; the preload ends the run once the reply is read */
        int c = accept(s, NULL, NULL);
        char buf[256] = {0};
        size_t n = 0;
        ssize_t got;
        while (n < sizeof buf - 1 && (got = read(c, buf + n, sizeof buf - 1 - n)) > 0)
            n += (size_t)got;
        uint32_t magic;
        memcpy(&magic, buf, 4);
        int matched = 0;
        if (magic == 0x4b4f4f4cu)
            matched++;
        if (strcmp(buf + 4, "open-sesame") == 0)
            matched++;
        dprintf(c, "matched %d\n", matched);
        close(c);
    }
}
"#;

/// Run `bin` under the preload with `input`, logging into a fresh CmpLog map; the reply and
/// every logged comparison.
fn traced_run(bin: &Path, input: &[u8]) -> (String, Vec<libafl::observers::CmpValues>) {
    use libafl::observers::CmpMap;
    use libafl_bolts::shmem::{ShMem, ShMemProvider, UnixShMemProvider};
    use libafl_targets::AflppCmpLogMap;

    let mut provider = UnixShMemProvider::new().unwrap();
    let shmem = provider.new_shmem(size_of::<AflppCmpLogMap>()).unwrap();
    let run = run_bounded(
        Command::new(bin)
            .env("LD_PRELOAD", preload())
            .env("__AFL_CMPLOG_SHM_ID", shmem.id().to_string())
            .env("SOCKFUZZ_CMPLOG_SHM_ID", shmem.id().to_string())
            .env_remove("__AFL_SHM_ID"),
        input,
        Duration::from_secs(10),
    );
    assert!(run.status.unwrap().success(), "traced run failed: {run:?}");
    // SAFETY: the segment is an AflppCmpLogMap-sized, page-aligned map the run has finished with.
    let map = unsafe { &*(shmem.as_ptr() as *const AflppCmpLogMap) };
    let values = (0..map.len())
        .flat_map(|site| (0..map.usable_executions_for(site)).filter_map(move |hit| map.values_of(site, hit)))
        .collect();
    (run.stdout_text(), values)
}

fn check_cmplog(compiler: &str) {
    use libafl::observers::CmpValues;
    let dir = scratch_dir(&format!("cmplog-{compiler}"));
    let bin = build_source(&dir, CMP_SERVER, compiler, false, true);

    let (reply, values) = traced_run(&bin, b"ABCDhello-world");
    assert_eq!(reply, "matched 0\n");
    let (input, wanted) = (0x4443_4241, 0x4b4f_4f4c); // "ABCD", "LOOK" (little-endian)
    let magic = values
        .iter()
        .any(|v| matches!(v, CmpValues::U32((a, b, _)) if [*a, *b] == [input, wanted] || [*b, *a] == [input, wanted]));
    assert!(magic, "the 4-byte compare was not logged ({} entries)", values.len());
    let string = values.iter().any(|v| match v {
        CmpValues::Bytes((a, b)) => {
            use libafl_bolts::ToSlice;
            let pair = [a.to_slice(), b.to_slice()];
            pair == [b"hello-world\0", b"open-sesame\0"] || pair == [b"open-sesame\0", b"hello-world\0"]
        }
        _ => false,
    });
    assert!(string, "the strcmp was not logged ({} entries)", values.len());

    // The hooks are transparent: the right values still match.
    let (reply, _) = traced_run(&bin, b"LOOKopen-sesame");
    assert_eq!(reply, "matched 2\n");
}

#[test]
fn gcc_cmplog_logs_integer_and_string_compares() {
    if require("gcc") {
        check_cmplog("gcc");
    }
}

#[test]
fn clang_cmplog_logs_integer_and_string_compares() {
    if require("clang") {
        check_cmplog("clang");
    }
}
