//! `fuzzer run --gdb[=ARGS] -- SERVER ARGS < FILE`: the server under gdb, set up as `fuzzer run`
//! sets it up, gdb's prompt on our terminal.
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{ExitCode, Stdio};

use anyhow::{Context, Result};
use nix::sys::signal::{pthread_sigmask, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::{getpgrp, tcgetpgrp, tcsetpgrp};

use crate::gdb;
use crate::runner::{Limits, Setup};

/// `fuzzer run --gdb[=ARGS] -- SERVER ARGS < FILE`: gdb on the server, its prompt on our
/// terminal, the server's `command`, `envs` and `limits` as `fuzzer run` prepared them; the
/// reply copied to stdout if `output`. Returns gdb's exit status.
pub fn run(
    command: &[OsString],
    envs: &[(&str, &OsStr)],
    limits: Limits,
    output: bool,
    gdb_args: &str,
) -> Result<ExitCode> {
    gdb::require()?;
    let args = if gdb_args.trim().is_empty() {
        vec!["-ex".to_string(), "run".to_string()]
    } else {
        shlex::split(gdb_args)
            .with_context(|| format!("--gdb='{gdb_args}': unbalanced quotes; quote gdb's arguments as in a shell"))?
    };
    let (setup, status_write) = Setup::new(None, envs, limits)?;
    let terminal = Terminal::open();
    let mut cmd = gdb::command(&setup, command, &args)?;
    cmd.stdin(terminal.stdin()?).process_group(0);
    if terminal.tty.is_some() {
        let ttou = ttou();
        // SAFETY: runs in the forked child before exec, where stdin is already the terminal and
        // the child leads its own process group; sigprocmask, getpgrp and tcsetpgrp are
        // async-signal-safe, and nothing is allocated. SIGTTOU is blocked so that a background
        // group may take the terminal; the mask is put back before exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut old = SigSet::empty();
                sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old))?;
                tcsetpgrp(std::io::stdin(), getpgrp())?;
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
                Ok(())
            });
        }
    }
    // Our copy of the reply goes to the terminal while gdb's group owns it (`stty tostop`
    // would stop us); blocked until we have the terminal back.
    let ttou = BlockTtou::new();
    let mut gdb = cmd.spawn().context("cannot start gdb")?;
    drop(cmd); // its copy of the terminal
    drop(status_write);
    let mut header = Vec::new();
    let status = gdb::session(&mut gdb, &setup.status_read, None, |bytes| {
        let reply = strip_header(&mut header, bytes);
        if output && !reply.is_empty() {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(reply);
            let _ = stdout.flush();
        }
    });
    terminal.reclaim();
    drop(ttou);
    let code = status.and_then(|s| s.code()).unwrap_or(1);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// The reply in `bytes`, after the preload's 7-byte listening message (`L`, port, pid), which
/// may arrive in pieces (`header` keeps it).
fn strip_header<'a>(header: &mut Vec<u8>, bytes: &'a [u8]) -> &'a [u8] {
    let take = (7 - header.len().min(7)).min(bytes.len());
    header.extend_from_slice(&bytes[..take]);
    &bytes[take..]
}

/// gdb's terminal: ours, handed to gdb's process group for the session, or /dev/null when we
/// have none (or are not in its foreground).
struct Terminal {
    tty: Option<File>,
}

impl Terminal {
    fn open() -> Terminal {
        let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok();
        let foreground = |t: &File| tcgetpgrp(t).is_ok_and(|group| group == getpgrp());
        Terminal { tty: tty.filter(foreground) }
    }

    fn stdin(&self) -> Result<Stdio> {
        Ok(match &self.tty {
            Some(tty) => tty.try_clone().context("cannot open the terminal for gdb")?.into(),
            None => Stdio::null(),
        })
    }

    /// Make our process group the terminal's foreground again.
    fn reclaim(&self) {
        if let Some(tty) = &self.tty {
            // SIGTTOU is blocked (`BlockTtou`), so a background group may do it.
            let _ = tcsetpgrp(tty, getpgrp());
        }
    }
}

/// SIGTTOU blocked in this thread while alive.
struct BlockTtou(SigSet);

impl BlockTtou {
    fn new() -> BlockTtou {
        let mut old = SigSet::empty();
        let _ = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou()), Some(&mut old));
        BlockTtou(old)
    }
}

/// The set of SIGTTOU alone.
fn ttou() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTTOU);
    set
}

impl Drop for BlockTtou {
    fn drop(&mut self) {
        // This thread's mask, saved in `new`.
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.0), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_stripped_across_pieces() {
        let mut header = Vec::new();
        assert_eq!(strip_header(&mut header, b"L\x00"), b"");
        assert_eq!(strip_header(&mut header, b"\x50\x00\x00\x01\x02HTTP"), b"HTTP");
        assert_eq!(strip_header(&mut header, b"/1.0"), b"/1.0");
    }
}
