//! The pipes between us and a server run: the preload's status pipe, the server's output.

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).context("cannot create a pipe")
}

/// Whether `fd` has something to read (or has ended) within `limit` (None: wait as long as it
/// takes; past `i32::MAX` ms, as long as that).
pub fn readable(fd: impl AsFd, limit: Option<Duration>) -> bool {
    let timeout = limit.map_or(PollTimeout::NONE, |l| PollTimeout::try_from(l).unwrap_or(PollTimeout::MAX));
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    nix::poll::poll(&mut fds, timeout).is_ok_and(|n| n > 0)
}

/// Whatever is in the status pipe now (the reply so far), without waiting: a process the
/// server left running may hold the pipe open after the run.
pub fn drain(status: &OwnedFd, reply: &mut Vec<u8>) {
    let mut buf = [0u8; 65536];
    while readable(status, Some(Duration::ZERO)) {
        match nix::unistd::read(status, &mut buf) {
            Ok(n) if n > 0 => reply.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
}

/// Read `pipe` to its end in a thread of its own (a full pipe must never stall the writer).
pub fn collect(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}
