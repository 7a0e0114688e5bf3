//! Stage 2, the start-up check: one plain request to each build under the preload must be
//! answered, end the run cleanly, on the port we chose, and record coverage; else the campaign
//! does not start, and the error names the cause.
//!
//! The request is sent as a polite client does, half-closing after it; a server that drops a
//! request whose end-of-file comes with it (an edge-triggered loop that takes the read of 0 in
//! the same burst for a closed client) is tried again with the connection kept open until the
//! reply, as `curl` and browsers keep it, and the campaign's seeds are then sent that way.

use crate::assets::{self, CHECK_REQUEST};
use crate::build::{self, Built};
use crate::comux;
use crate::port;
use crate::runner::map::run_with_map;
use crate::runner::target::Target;
use crate::runner::{self, preload, Outcome, ServerSaid};
use anyhow::{bail, Context, Result};
use std::path::Path;

/// How the server needs a client's connection to end after its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Half-closed right after the request (the default test case, raw bytes).
    HalfClose,
    /// Kept open until the server waits for more (a comux `KEEP_OPEN` chunk).
    KeepOpen,
}

/// The start-up check of each binary (with `mem_limit_mb` of memory), on a scratch copy of the
/// sample web root: how the builds need their clients' connections to end.
pub fn check_builds(built: &Built, out: &Path, server_args: &str, mem_limit_mb: u64) -> Result<Ending> {
    let root = out.join("check-root");
    assets::write_root(&root)?;
    let builds =
        std::iter::once((&built.plain, &built.plain_cwd)).chain(built.asan.as_ref().map(|a| (a, &built.asan_cwd)));
    let mut ending = Ending::HalfClose;
    for (binary, cwd) in builds {
        if !binary.is_file() {
            bail!("the server {} does not exist", binary.display());
        }
        if !build::is_instrumented(binary)? {
            bail!("{} has no coverage instrumentation: build it with fuzzer-cc (or AFL++'s afl-clang-fast), or use --src-dir", binary.display());
        }
        let target = Target::new(binary.clone(), Some(server_args)).in_dir(cwd.clone());
        if check(&target.with_mem_limit(mem_limit_mb), &root)?.ending == Ending::KeepOpen {
            ending = Ending::KeepOpen;
        }
    }
    Ok(ending)
}

/// What the start-up check found.
pub struct Checked {
    /// Covered map entries.
    pub entries: usize,
    pub ending: Ending,
}

/// The start-up check: one plain request must be answered, end the run cleanly and record
/// coverage.
///
/// A server that cannot be driven inside a network namespace of its own (it looks up an
/// interface or a host name, say) is tried once more on the host's network; if it runs there,
/// the whole campaign does (`preload::use_host_network`), and only a failure there is an error.
pub fn check(target: &Target, root: &Path) -> Result<Checked> {
    println!("[check] test run of {} under sockfuzz...", target.binary.display());
    let cannot_drive = || {
        let cwd = target
            .cwd
            .as_ref()
            .map(|d| format!(" (it ran in {}; --cwd DIR runs it in a copy of another folder)", d.display()));
        format!("the test run failed: the fuzzer cannot drive this server{}", cwd.unwrap_or_default())
    };
    let mut port = port::free_port()?;
    let (mut finished, mut map) = match run_with_map(target, root, CHECK_REQUEST, port) {
        Err(in_netns) if preload::netns() == "1" => {
            // Maybe our namespace is the cause: once more on the host's network, as it would run.
            preload::use_host_network();
            port = port::free_port()?;
            let on_host = run_with_map(target, root, CHECK_REQUEST, port).with_context(cannot_drive)?;
            println!(
                "[check] the server could not start inside a private network namespace ({}), so it is fuzzed on \
                 the host's loopback",
                what_it_said(&in_netns)
            );
            on_host
        }
        result => result.with_context(cannot_drive)?,
    };
    let mut ending = Ending::HalfClose;
    let dropped = |f: &runner::Finished| {
        f.reply.is_empty() && matches!(f.outcome, Outcome::Ok | Outcome::Hang | Outcome::LeftOpen | Outcome::Blocked)
    };
    if dropped(&finished) {
        // Maybe only a client that keeps its side open until the reply is served.
        let kept = comux::kept_open(CHECK_REQUEST);
        if let Ok((again, kept_map)) = run_with_map(target, root, &kept, port::free_port()?) {
            if again.outcome == Outcome::Ok && !again.reply.is_empty() {
                println!(
                    "[check] the server dropped the request when its end-of-file came with it, and answered it \
                     when the connection stayed open until the reply (as curl and browsers keep it): test cases \
                     are sent that way"
                );
                (finished, map, ending) = (again, kept_map, Ending::KeepOpen);
            }
        }
    }
    let request = String::from_utf8_lossy(CHECK_REQUEST.split(|&b| b == b'\r').next().unwrap_or_default()).into_owned();
    match finished.outcome {
        Outcome::Ok => {}
        // A finding, but the server serves: fuzzing goes on, and will save it.
        Outcome::DescriptorLeak(_) | Outcome::MemoryLeak(_) => println!("[check] {}", finished.outcome),
        Outcome::Hang | Outcome::LeftOpen | Outcome::Blocked => bail!(
            "the test run did not end: {} (the request was `{request}`). An HTTP/1.0 connection must be \
             closed after the response.",
            finished.outcome
        ),
        ref outcome => bail!(
            "the test run failed on a plain `{request}`: {}. Fix this first; replay it with \
             `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | fuzzer run -- {}`\n{}",
            outcome,
            target.binary.display(),
            runner::tail(&finished.stderr, 10)
        ),
    }
    // In a network namespace of its own, each copy may keep a fixed port.
    if finished.port != port && preload::netns() != "1" {
        let how = if target.args.contains("{port}") {
            format!("passed as {{port}} in the server arguments `{}`", target.args)
        } else {
            format!("the server arguments `{}` have no {{port}}", target.args)
        };
        let no_netns = if preload::on_host_network() {
            "the server could not start inside a network namespace of its own, where a fixed port would do"
        } else {
            "this machine does not let it give each copy a network namespace of its own, where a fixed port \
             would do"
        };
        bail!(
            "the server listened on port {}, not on the port the fuzzer chose ({port}; {how}). The fuzzer \
             runs several copies of the server at once (one per core, and one for CmpLog), each on its own \
             port ({no_netns}): make the server take its port from its command line, and put {{port}} \
             there in --server-args",
            finished.port
        );
    }
    if finished.reply.is_empty() {
        bail!("the test run got no reply: the server closed the connection without answering `{request}`");
    }
    if map.is_empty() {
        bail!(
            "the test run recorded no coverage: {} is not instrumented (was it built with fuzzer-cc?)",
            target.binary.display()
        );
    }
    let status_line = finished.reply.split(|&b| b == b'\r' || b == b'\n').next().unwrap_or_default();
    let status_line = String::from_utf8_lossy(&status_line[..status_line.len().min(80)]).into_owned();
    println!("[check] the server answered `{status_line}`; {} coverage map entries hit", map.len());
    Ok(Checked { entries: map.len(), ending })
}

/// What a run that could not drive the server shows of why: the last line the server printed
/// (its first 200 characters: a line can be long).
fn what_it_said(error: &anyhow::Error) -> String {
    let said = error.downcast_ref::<ServerSaid>().and_then(|said| said.0.lines().rev().find(|l| !l.trim().is_empty()));
    match said {
        Some(line) => format!("it said `{}`", line.trim().chars().take(200).collect::<String>()),
        None => "it printed nothing".into(),
    }
}
