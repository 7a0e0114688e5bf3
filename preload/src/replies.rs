//! The status codes of the server's responses, for the fuzzer's response-state feedback
//! (`contract::states`): each connection's reply is cut into responses (a status line and
//! headers, then a body of `Content-Length` bytes), and each code is marked in the fuzzer's map
//! as a transition from the test case's previous code. A reply that cannot be followed (no
//! length, chunked, a head past 8 KiB) gives no more codes on its connection: the map is a
//! hint for the fuzzer, never a verdict.

use contract::states::{self, NOT_HTTP};
use std::sync::atomic::AtomicPtr;
use std::sync::atomic::Ordering::SeqCst;

/// The longest response head followed.
const HEAD_MAX: usize = 8192;

/// The fuzzer's map, attached before the fork server starts (null: no state feedback).
static MAP: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

/// Attach the map, if the fuzzer gave one. Before the fork server, so every run shares it.
pub fn attach() {
    if let Ok((map, len)) = contract::sysv::attach(contract::env::STATES_SHM) {
        if len >= states::LEN {
            MAP.store(map, SeqCst);
        }
    }
}

/// Whether the fuzzer asked for the codes.
pub fn enabled() -> bool {
    !MAP.load(SeqCst).is_null()
}

/// Mark the transition `prev -> code`.
fn mark(prev: u16, code: u16) {
    let map = MAP.load(SeqCst);
    if !map.is_null() {
        // SAFETY: a non-null MAP is an attached segment of at least states::LEN bytes, never
        // detached, and `slot` is below LEN; volatile, as the fuzzer reads it after the run.
        unsafe { map.add(states::slot(prev, code.min(999))).write_volatile(1) };
    }
}

/// The codes of one test case, in the order their responses arrive.
#[derive(Default)]
pub struct Codes {
    last: u16,
    #[cfg(test)]
    seen: Vec<u16>,
}

impl Codes {
    fn push(&mut self, code: u16) {
        mark(self.last, code);
        self.last = code;
        #[cfg(test)]
        self.seen.push(code);
    }
}

/// Where one connection's reply is.
#[derive(Default)]
enum At {
    /// In a response's head, read so far in `Reply::head`.
    #[default]
    Head,
    /// In a body, with this many bytes left; `fresh` before its first byte.
    Body { left: u64, fresh: bool },
    /// Past what can be followed: the rest is not looked at.
    Lost,
}

/// One connection's reply, cut into responses as it is read.
#[derive(Default)]
pub struct Reply {
    at: At,
    head: Vec<u8>,
}

impl Reply {
    /// The server sent `bytes` on this connection: each status line completed is a code.
    pub fn read(&mut self, mut bytes: &[u8], codes: &mut Codes) {
        while !bytes.is_empty() {
            match self.at {
                At::Lost => return,
                // A response to HEAD (or a 304) announces a length it does not send: the next
                // status line comes first.
                At::Body { fresh: true, .. } if bytes.starts_with(b"HTTP/1.") => self.at = At::Head,
                At::Body { left, .. } => {
                    let n = left.min(bytes.len() as u64);
                    bytes = &bytes[n as usize..];
                    self.at = if n == left { At::Head } else { At::Body { left: left - n, fresh: false } };
                }
                At::Head => {
                    let before = self.head.len();
                    let take = bytes.len().min(HEAD_MAX - before);
                    self.head.extend_from_slice(&bytes[..take]);
                    if !b"HTTP/".starts_with(&self.head[..self.head.len().min(5)]) {
                        codes.push(NOT_HTTP);
                        self.at = At::Lost;
                        return;
                    }
                    let Some(end) = head_end(&self.head, before) else {
                        if self.head.len() == HEAD_MAX {
                            codes.push(status(&self.head).unwrap_or(NOT_HTTP));
                            self.at = At::Lost;
                        }
                        return;
                    };
                    bytes = &bytes[end - before..];
                    self.head.truncate(end);
                    let code = status(&self.head);
                    codes.push(code.unwrap_or(NOT_HTTP));
                    self.at = body(&self.head, code);
                    self.head.clear();
                }
            }
        }
    }
}

/// Where the head ends (after its empty line), looking from a little before `from`.
fn head_end(head: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let at = |pat: &[u8]| head[start..].windows(pat.len()).position(|w| w == pat).map(|i| start + i + pat.len());
    [at(b"\r\n\r\n"), at(b"\n\n")].into_iter().flatten().min()
}

/// The code of a status line `HTTP/x.y NNN ...`.
fn status(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let code = line.splitn(3, |&b| b == b' ').nth(1)?;
    let digits = code.strip_suffix(b"\r").unwrap_or(code);
    if digits.len() != 3 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')))
}

/// What follows a head with status `code`: no body (1xx, 204, 304), one of its
/// `Content-Length`, or one that cannot be followed.
fn body(head: &[u8], code: Option<u16>) -> At {
    if code.is_some_and(|c| c < 200 || c == 204 || c == 304) {
        return At::Head;
    }
    let mut length = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return At::Lost;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            length = std::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok());
        }
    }
    match length {
        Some(0) => At::Head,
        Some(left) => At::Body { left, fresh: true },
        None => At::Lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes of `reply`, read in pieces of `piece` bytes.
    fn codes(reply: &[u8], piece: usize) -> Vec<u16> {
        let (mut r, mut codes) = (Reply::default(), Codes::default());
        reply.chunks(piece).for_each(|part| r.read(part, &mut codes));
        codes.seen
    }

    #[test]
    fn pipelined_responses_give_each_code_whatever_the_pieces() {
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\ncontent-length:  2\r\n\r\nnoHTTP/1.0 403 Forbidden\n\n";
        for piece in [1, 2, 7, 1000] {
            assert_eq!(codes(reply, piece), [200, 404, 403], "pieces of {piece}");
        }
    }

    #[test]
    fn heads_without_bodies_and_replies_that_cannot_be_followed() {
        // A response to HEAD announces 39 bytes it does not send; a 304 has no body.
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 39\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nHTTP/1.1 501 x\n\n";
        assert_eq!(codes(head, 1000), [200, 304, 501]);
        assert_eq!(codes(b"<html>HTTP/1.1 200 OK\r\n\r\n", 1000), [NOT_HTTP]);
        let no_length = b"HTTP/1.0 200 OK\r\n\r\nHTTP/1.0 404 x\r\n\r\n";
        assert_eq!(codes(no_length, 3), [200], "a body without a length runs to the end");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 404 x\r\n\r\n";
        assert_eq!(codes(chunked, 1000), [200]);
        assert_eq!(codes(b"HTTP/1.1 2000 OK\r\n\r\n", 1000), [NOT_HTTP]);
        let long = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; 9000]].concat();
        assert_eq!(codes(&long, 100), [200]);
    }

    #[test]
    fn transitions_follow_the_test_case_across_connections() {
        // Leaked: other tests may mark it while this one has it attached.
        let map = Box::leak(vec![0u8; states::LEN].into_boxed_slice()).as_mut_ptr();
        MAP.store(map, SeqCst);
        let (mut a, mut b, mut codes) = (Reply::default(), Reply::default(), Codes::default());
        a.read(b"HTTP/1.1 302 OK\r\nContent-Length: 0\r\n\r\n", &mut codes);
        b.read(b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n", &mut codes);
        MAP.store(std::ptr::null_mut(), SeqCst);
        // SAFETY: slots are below LEN, the length of the leaked buffer.
        let marked = |prev, code| unsafe { map.add(states::slot(prev, code)).read_volatile() } == 1;
        assert!(marked(states::START, 302) && marked(302, 403) && !marked(states::START, 403));
    }
}
