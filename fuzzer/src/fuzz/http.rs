//! A lenient HTTP/1.x request parser for mutators: splits a connection's bytes into pipelined
//! requests (request line, headers, body) and writes them back byte-exact when unchanged.

/// One request as sent; every field keeps its original bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Request-line tokens split on single spaces (method, target, version, and any extra).
    pub line: Vec<Vec<u8>>,
    /// Header lines as (name, rest): `rest` starts with the `:` (empty for a line without one)
    /// and keeps the spaces, so lines are written back as they came.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// `\r\n` or `\n`, as found on the request line.
    pub eol: Vec<u8>,
    /// Whether the blank line ending the headers was there.
    pub terminated: bool,
}

/// All requests of one connection, plus bytes after the last one that did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    pub requests: Vec<Request>,
    pub rest: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

impl Request {
    #[cfg(test)]
    pub fn method(&self) -> &[u8] {
        self.line.first().map_or(&[], Vec::as_slice)
    }

    /// The value of the first header called `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.get(1..).unwrap_or_default().trim_ascii())
    }

    /// Whether a `Transfer-Encoding` header names `chunked`.
    pub fn is_chunked(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case(b"Transfer-Encoding") && v.to_ascii_lowercase().windows(7).any(|w| w == b"chunked")
        })
    }

    /// Index of the first header called `name`.
    pub fn header_index(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// Set (or add) a header, keeping its position when it exists.
    pub fn set_header(&mut self, name: &str, value: &[u8]) {
        let value = [b": ".as_slice(), value].concat();
        match self.header_index(name) {
            Some(i) => self.headers[i].1 = value,
            None => self.headers.push((name.as_bytes().to_vec(), value)),
        }
    }

    /// Make Content-Length match the body (adding it when there is a body).
    pub fn fix_content_length(&mut self) {
        if self.header_index("Content-Length").is_some() || !self.body.is_empty() {
            self.set_header("Content-Length", self.body.len().to_string().as_bytes());
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.line.join(&b' '));
        out.extend_from_slice(&self.eol);
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(value);
            out.extend_from_slice(&self.eol);
        }
        if self.terminated {
            out.extend_from_slice(&self.eol);
        }
        out.extend_from_slice(&self.body);
    }
}

impl Conversation {
    /// Parse leniently; `None` when not even one request line with headers is there.
    pub fn parse(bytes: &[u8]) -> Option<Conversation> {
        let mut requests = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let Some((request, used)) = parse_one(&bytes[at..]) else { break };
            requests.push(request);
            at += used;
        }
        if requests.is_empty() {
            return None;
        }
        Some(Conversation { requests, rest: bytes[at..].to_vec() })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for r in &self.requests {
            r.write(&mut out);
        }
        out.extend_from_slice(&self.rest);
        out
    }
}

/// One request from the start of `bytes`, and how many bytes it took.
fn parse_one(bytes: &[u8]) -> Option<(Request, usize)> {
    let line_end = bytes.iter().position(|&b| b == b'\n')?;
    let crlf = line_end > 0 && bytes[line_end - 1] == b'\r';
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let line = &bytes[..line_end + 1 - eol.len()];
    if line.is_empty() || !line.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    let mut request = Request {
        line: line.split(|&b| b == b' ').map(<[u8]>::to_vec).collect(),
        headers: Vec::new(),
        body: Vec::new(),
        eol: eol.to_vec(),
        terminated: false,
    };
    let mut at = line_end + 1;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let Some(end) = find(rest, eol) else {
            // An unterminated last header line: keep it as a header without end of line.
            break;
        };
        if end == 0 {
            request.terminated = true;
            at += eol.len();
            break;
        }
        let header = &rest[..end];
        let colon = header.iter().position(|&b| b == b':').unwrap_or(header.len());
        request.headers.push((header[..colon].to_vec(), header[colon..].to_vec()));
        at += end + eol.len();
    }
    if !request.terminated {
        // Headers that never end: a partial last line (if any) stays in `rest`.
        return Some((request, at));
    }
    // A chunked body runs to its last chunk and trailers (as `Transfer-Encoding` overrides
    // `Content-Length`); one that does not parse as chunks takes the rest of the connection.
    let take = if request.is_chunked() {
        chunked(&bytes[at..], eol).map_or(bytes.len() - at, |(len, _)| len)
    } else {
        let declared = request
            .header("Content-Length")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
            .unwrap_or(0);
        declared.min(bytes.len() - at)
    };
    request.body = bytes[at..at + take].to_vec();
    Some((request, at + take))
}

/// The body in chunked transfer coding at the start of `bytes` (chunks, the last one of size
/// 0, trailers, the blank line): its length and its data, if it is complete and its sizes are
/// hex numbers.
pub fn chunked(bytes: &[u8], eol: &[u8]) -> Option<(usize, Vec<u8>)> {
    let (mut at, mut data) = (0, Vec::new());
    loop {
        let end = at + find(&bytes[at..], eol)?;
        let line = &bytes[at..end];
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let size = usize::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
        at = end + eol.len();
        if size == 0 {
            // Trailer lines up to the blank one.
            loop {
                let end = at + find(&bytes[at..], eol)?;
                let blank = end == at;
                at = end + eol.len();
                if blank {
                    return Some((at, data));
                }
            }
        }
        let data_end = at.checked_add(size)?;
        data.extend_from_slice(bytes.get(at..data_end)?);
        at = data_end + eol.len();
        if at > bytes.len() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_pipelined_requests_byte_exact() {
        let raw = b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcdGET / HTTP/1.0\r\n\r\n";
        let c = Conversation::parse(raw).unwrap();
        assert_eq!(c.requests.len(), 2);
        assert_eq!(c.requests[0].method(), b"POST");
        assert_eq!(c.requests[0].body, b"abcd");
        assert_eq!(c.requests[0].header("host"), Some(&b"x"[..]));
        assert_eq!(c.to_bytes(), raw);
    }

    #[test]
    fn keeps_lf_endings_truncated_bodies_and_garbage() {
        for raw in [
            &b"GET / HTTP/1.0\nHost: x\n\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort",
            b"GET / HTTP/1.1\r\nHost: x",
            b"GET / HTTP/1.0\r\n\r\n\x00\x01binary",
            b"GET / HTTP/1.1\r\nno colon here\r\nHost:x\r\n\r\n",
        ] {
            let c = Conversation::parse(raw).unwrap();
            assert_eq!(c.to_bytes(), raw, "{:?}", String::from_utf8_lossy(raw));
        }
        assert!(Conversation::parse(b"\x00\x01\x02").is_none());
    }

    #[test]
    fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
        let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let raw = [&head[..], b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n"].concat();
        let c = Conversation::parse(&raw).unwrap();
        assert_eq!(c.requests.len(), 2);
        assert_eq!(c.requests[0].body, b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n");
        assert_eq!(chunked(&c.requests[0].body, b"\r\n").unwrap().1, b"abc");
        assert_eq!(c.to_bytes(), raw);
        // A size past the data, or none: the rest of the connection is the body.
        for bogus in [&b"ffffffffffffffff\r\nabc\r\n0\r\n\r\n"[..], b"-1\r\nabc\r\n0\r\n\r\n", b"3\r\nabc"] {
            let raw = [&head[..], bogus, b"GET / HTTP/1.0\r\n\r\n"].concat();
            let c = Conversation::parse(&raw).unwrap();
            assert_eq!(c.requests.len(), 1, "{:?}", String::from_utf8_lossy(&raw));
            assert_eq!(c.to_bytes(), raw);
        }
    }

    #[test]
    fn fixes_content_length() {
        let mut c = Conversation::parse(b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\na").unwrap();
        c.requests[0].body = b"hello".to_vec();
        c.requests[0].fix_content_length();
        assert_eq!(c.to_bytes(), b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    }
}
