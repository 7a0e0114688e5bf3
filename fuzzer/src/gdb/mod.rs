//! gdb on a server under the preload: started by gdb (`fuzzer run --gdb`, and for triage the
//! backtrace of a crash in a build without AddressSanitizer), or attached to a hung server
//! (`stacks`, which also reads gdb's backtraces into frames).
//!
//! gdb 13 without a shell (`startup-with-shell off`) splits the server's arguments at spaces and
//! keeps the backslashes it quoted them with, so gdb starts the server through `/bin/sh`, and
//! the exec-wrapper `env LD_PRELOAD=...` puts the preload in the server alone (not in gdb, not
//! in the shell), as gdb's manual suggests for `LD_PRELOAD`.

pub mod stacks;

use crate::runner::pipes::{self, collect};
use crate::runner::{Limits, Setup};
use anyhow::{bail, Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use stacks::{on_path, QUIET_SETTINGS};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Time gdb may take to read the server's symbols and start it, on top of a run's limits.
const STARTUP: Duration = Duration::from_secs(10);

/// gdb is installed, or an error that says how to install it.
pub fn require() -> Result<()> {
    require_on(std::env::var_os("PATH").as_deref())
}

fn require_on(path: Option<&OsStr>) -> Result<()> {
    if !on_path(path) {
        bail!("gdb is not installed (or not on PATH): install it with `apt-get install gdb`");
    }
    Ok(())
}

/// The backtrace of a crash: the server (`command`, with `envs` on top of the preload's, in
/// `cwd` if given) run under gdb in batch mode on `input` (`-batch -ex run -ex bt`, set up as
/// for `fuzzer run --gdb`), within the run's `limits` plus time for gdb to start. Returns gdb's
/// output and the server's, as they came (see [`parse_backtrace`]); when the server did not
/// crash, gdb's `bt` says `No stack.`. For builds without AddressSanitizer (whose own report
/// has the stack). Errors: gdb missing or not started, the input not written.
pub fn crash_backtrace(
    command: &[OsString],
    envs: &[(&str, &OsStr)],
    cwd: Option<&Path>,
    input: &[u8],
    limits: Limits,
) -> Result<String> {
    require()?;
    let (setup, status_write) = Setup::new(Some(input), envs, limits)?;
    let args: Vec<String> = ["-nx", "-batch", "-ex", "run", "-ex", "bt"].map(String::from).into();
    let mut cmd = self::command(&setup, command, &args)?;
    // One pipe for gdb's stdout and stderr (and the server's): the text in the order written.
    let (out_read, out_write) = pipes::pipe()?;
    cmd.stdin(Stdio::null()).stdout(out_write.try_clone()?).stderr(out_write).process_group(0);
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    let mut gdb = cmd.spawn().context("cannot start gdb")?;
    drop(cmd); // its copies of the pipe's write end, so that the pipe ends with gdb
    drop(status_write);
    let text = collect(File::from(out_read));
    session(&mut gdb, &setup.status_read, Some(limits.listen + limits.run + STARTUP), |_| {});
    Ok(String::from_utf8_lossy(&text.join().unwrap_or_default()).into_owned())
}

/// gdb on `server` (its command line) with the preload's environment from `setup`, then `args` (gdb's own
/// options, e.g. `-batch -ex run`); the settings come first so that `args` may override them.
pub fn command(setup: &Setup, server: &[OsString], args: &[String]) -> Result<Command> {
    let library = setup.library.to_str().context("the path of libsockfuzz.so is not UTF-8: move it (SOCKFUZZ_LIB)")?;
    let preload = shlex::try_quote(&format!("LD_PRELOAD={library}"))
        .ok()
        .with_context(|| format!("the path of libsockfuzz.so cannot be quoted for a shell: {library}"))?
        .into_owned();
    let mut cmd = Command::new("gdb");
    // gdb's shell is $SHELL: a POSIX one for the quoting it does; the server gets the user's.
    cmd.env_remove("LD_PRELOAD").env("SHELL", "/bin/sh");
    setup.apply(&mut cmd);
    cmd.arg("-q").args(QUIET_SETTINGS.iter().flat_map(|s| ["-iex", s]));
    let shell = match std::env::var_os("SHELL") {
        Some(shell) => format!("set environment SHELL={}", shell.to_string_lossy()),
        None => "unset environment SHELL".into(),
    };
    let settings = [
        "set startup-with-shell on".to_string(),
        format!("set exec-wrapper env {preload}"),
        shell,
        // A fork-per-connection server crashes in the child it forked: keep every child under
        // gdb, and let them all run (with one process scheduled, the child would wait, stopped,
        // while the server waits for it), so that gdb stops at the crash, in the child.
        "set detach-on-fork off".into(),
        "set schedule-multiple on".into(),
    ];
    for setting in &settings {
        cmd.arg("-ex").arg(setting);
    }
    cmd.args(args).arg("--args").args(server);
    Ok(cmd)
}

/// Wait for gdb to end (at most `limit`), passing what the status pipe brings (the preload's
/// listening message, then the reply) to `on_status` meanwhile, so that a large reply never
/// stalls the server. Then kill gdb's process group (what is left of it: a batch gdb's server
/// runs in it; gdb itself kills the processes it started when it dies) and reap gdb. Returns
/// gdb's exit status, None when the limit ended it.
pub fn session(
    gdb: &mut Child,
    status: &OwnedFd,
    limit: Option<Duration>,
    mut on_status: impl FnMut(&[u8]),
) -> Option<ExitStatus> {
    let deadline = limit.map(|l| Instant::now() + l);
    let mut bytes = Vec::new();
    let ended = loop {
        let ready = pipes::readable(status, Some(Duration::from_millis(20)));
        pipes::drain(status, &mut bytes);
        on_status(&bytes);
        let hung_up = ready && bytes.is_empty();
        bytes.clear();
        if exited(gdb) {
            break true;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break false;
        }
        if hung_up {
            std::thread::sleep(Duration::from_millis(20)); // the pipe has ended: poll no longer waits
        }
    };
    // gdb (our child) has not been reaped yet, so its process group id is still ours to signal.
    let _ = killpg(Pid::from_raw(gdb.id() as i32), Signal::SIGKILL);
    let exit = gdb.wait().ok();
    // What the server wrote between the last look and gdb's end (a fork server's reply, copied
    // by the parent as the child exits, races with gdb quitting on that exit) is still in the pipe.
    pipes::drain(status, &mut bytes);
    on_status(&bytes);
    if ended {
        exit
    } else {
        None
    }
}

/// Whether gdb has ended, without reaping it (its group is killed first).
fn exited(gdb: &Child) -> bool {
    // WNOWAIT leaves the child to be reaped by `Child::wait`.
    let options = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::Pid(Pid::from_raw(gdb.id() as i32)), options), Ok(WaitStatus::StillAlive) | Err(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_gdb_names_the_fix() {
        let err = require_on(Some(OsStr::new("/nonexistent:/proc"))).unwrap_err();
        assert!(err.to_string().contains("apt-get install gdb"), "{err}");
        assert!(require_on(None).is_err());
        if Path::new("/usr/bin/gdb").is_file() {
            assert!(require_on(Some(OsStr::new("/nonexistent:/usr/bin"))).is_ok());
        }
    }
}
