//! The finding file (`SOCKFUZZ_FINDING_FILE`): what an oracle found, written just before the run
//! ends by its signal (the fuzzer reads the file only after that signal, so that a server's own
//! use of the signal is never taken for a finding). Lines of UTF-8 text, fields split by tabs.
//!
//! Written through raw system calls from a stack buffer: a traversal is found inside a hook (any
//! server thread, maybe a signal handler), which must not allocate nor be seen by our hooks.

use crate::state::config;
use libc::c_int;

/// The finding file, open for writing (truncated), with a line being buffered.
pub struct Writer {
    fd: c_int,
    buf: [u8; 256],
    len: usize,
}

impl Writer {
    /// Open the finding file; None when there is none (`SOCKFUZZ_FINDING_FILE` unset) or it
    /// cannot be written.
    pub fn create() -> Option<Writer> {
        let file = config().finding_file.as_ref()?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
        // SAFETY: a C string and plain integers.
        let fd = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, file.as_ptr(), flags, 0o644) } as c_int;
        (fd >= 0).then_some(Writer { fd, buf: [0; 256], len: 0 })
    }

    /// Bytes as they are (a separator, a line end).
    pub fn put(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
    }

    /// `bytes` as one field of UTF-8: `\\`, `\t`, `\n`, and `\xNN` for other control characters
    /// and bytes that are not UTF-8 (a fuzzed path may hold anything).
    pub fn escaped(&mut self, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let hex = |w: &mut Writer, b: u8| w.put(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        for chunk in bytes.utf8_chunks() {
            for &b in chunk.valid().as_bytes() {
                match b {
                    b'\\' => self.put(b"\\\\"),
                    b'\t' => self.put(b"\\t"),
                    b'\n' => self.put(b"\\n"),
                    0..0x20 | 0x7f => hex(self, b),
                    _ => self.put(&[b]),
                }
            }
            for &b in chunk.invalid() {
                hex(self, b);
            }
        }
    }

    fn flush(&mut self) {
        let mut done = 0;
        while done < self.len {
            // SAFETY: writing initialised bytes of our buffer.
            let n = unsafe { libc::syscall(libc::SYS_write, self.fd, self.buf[done..].as_ptr(), self.len - done) };
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        self.len = 0;
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.flush();
        // SAFETY: closing the descriptor `create` opened.
        unsafe { libc::syscall(libc::SYS_close, self.fd) };
    }
}
