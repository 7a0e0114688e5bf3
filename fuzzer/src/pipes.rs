//! The pipes between us and a server run: the preload's status pipe, the server's output.

use anyhow::{Context, Result};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot create a pipe");
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Whatever is in the status pipe now (the reply so far), without waiting: a process the
/// server left running may hold the pipe open after the run.
pub fn drain(status: &OwnedFd, reply: &mut Vec<u8>) {
    let mut buf = [0u8; 65536];
    loop {
        let mut pfd = libc::pollfd { fd: status.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd; a zero timeout never blocks.
        if unsafe { libc::poll(&mut pfd, 1, 0) } <= 0 || pfd.revents & libc::POLLIN == 0 {
            return;
        }
        // SAFETY: reading into a local buffer of its size from a descriptor we own.
        let n = unsafe { libc::read(status.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
        reply.extend_from_slice(&buf[..n as usize]);
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
