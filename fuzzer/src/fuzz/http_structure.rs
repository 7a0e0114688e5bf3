//! Mutators for the HTTP structure havoc seldom writes by chance, and CmpLog cannot find where
//! the server compares nothing: bodies in chunked transfer coding, JSON string escapes and
//! edge values, percent-encodings and target forms, edge numbers in the headers that hold one,
//! and malformed header blocks. Each edits one request of a connection, as the other HTTP
//! mutators (`mutators`), writes raw bytes back, and names itself in `op:` (`op:http+chunked`).

use super::http::chunked;
use super::http_mutator::{below, http_mutator, pick};
use super::names::note_op;

/// A login body, where a request has none to work on.
const LOGIN_JSON: &[u8] = br#"{"username":"user0","password":"thepassword"}"#;

/// Chunk sizes a size parser overflows on or misreads.
const CHUNK_SIZES: &[&[u8]] = &[
    b"0",
    b"ffffffffffffffff",
    b"10000000000000000",
    b"7fffffff",
    b"80000000",
    b"ffffffff",
    b"-1",
    b"00000000000000000005",
    b" 5",
    b"5 ",
    b"0x5",
    b"",
    b"z",
];

/// JSON string escapes, the valid and the invalid, and bytes that need one.
const JSON_ESCAPES: &[&[u8]] = &[
    br#"\""#,
    br"\\",
    br"\/",
    br"\b",
    br"\f",
    br"\n",
    br"\r",
    br"\t",
    br"\u0000",
    br"\u00e9",
    br"\u20ac",
    br"\ud83d\ude00",
    br"\ud83d",
    br"\ude00",
    br"\u",
    br"\u12",
    br"\uzzzz",
    br"\x41",
    br"\",
    b"\x00",
    b"\xc3\xa9",
    b"\xe2\x82\xac",
];

/// JSON values of the wrong type, or at the edges of a number parser.
const JSON_VALUES: &[&[u8]] = &[
    b"null",
    b"true",
    b"[]",
    b"{}",
    br#""""#,
    b"0",
    b"-0",
    b"1e309",
    b"-1e309",
    b"1.7976931348623157e308",
    b"5e-324",
    b"12345678901234567890",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"0.1e",
    b"01",
    b"NaN",
    b"--1",
];

/// What may follow a JSON document.
const JSON_TRAILERS: &[&[u8]] = &[b"}", b",", b"]", b"garbage", b"\x00", b"{}", b" ", br#","x":1}"#];

/// Pieces of a request target that decoders and path checks get wrong.
const TARGET_PIECES: &[&[u8]] = &[
    b"%00",
    b"%2e%2e",
    b"%2e%2e%2f",
    b"%2f",
    b"%5c",
    b"%zz",
    b"%",
    b"%2",
    b"%252e%252e%252f",
    b"%25",
    b"%c0%af",
    b"%c0%ae%c0%ae",
    b"%e0%80%af",
    b"//",
    b"/./",
    b"/..",
    b"?a=b&c=%41",
    b"?",
    b"#frag",
    b";x",
    b"%ff%fe",
];

/// Whole targets of the other request forms (absolute, asterisk, authority) and none.
const TARGET_FORMS: &[&[u8]] = &[
    b"http://localhost/index.html",
    b"http://localhost:80/",
    b"HTTP://LOCALHOST",
    b"http://",
    b"*",
    b"localhost:80",
    b"index.html",
    b"/index.html?",
];

/// Headers whose values are numbers (or hold some).
const NUMBER_HEADERS: &[&str] = &["Content-Length", "Range", "If-Modified-Since", "Max-Forwards"];

/// The integer edges of 8, 16, 32 and 64 bits, signed and unsigned.
const INT_EDGES: &[&str] = &[
    "0",
    "1",
    "-1",
    "127",
    "128",
    "-128",
    "-129",
    "255",
    "256",
    "32767",
    "32768",
    "-32768",
    "-32769",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
];

/// An integer edge as a student's parser may meet it: plain, with leading zeros, spaces or a
/// sign.
fn edge_number<S: libafl::state::HasRand>(state: &mut S) -> String {
    let n = pick(state, INT_EDGES);
    match below(state, 8) {
        0 => format!("000{n}"),
        1 => format!(" {n}"),
        2 => format!("{n} "),
        3 if !n.starts_with('-') => format!("+{n}"),
        _ => n.to_string(),
    }
}

http_mutator!(
    /// Send the body in chunked transfer coding: chunks whose sizes are right, overflow, are
    /// negative or disagree with the data, with extensions, trailers or no last chunk, and
    /// sometimes a `Content-Length` or a second `Transfer-Encoding` beside it.
    Chunked, |state, req| {
        let mut data = if req.is_chunked() {
            chunked(&req.body, &req.eol).map_or_else(|| req.body.clone(), |(_, data)| data)
        } else {
            std::mem::take(&mut req.body)
        };
        if data.is_empty() {
            data = LOGIN_JSON.to_vec();
        }
        let eol = req.eol.clone();
        let (mut body, mut rest) = (Vec::new(), &data[..]);
        let pieces = 1 + below(state, 3);
        for i in 0..pieces {
            let n = if i + 1 == pieces { rest.len() } else { below(state, rest.len() + 1) };
            let (piece, after) = rest.split_at(n);
            rest = after;
            let size = match below(state, 4) {
                0 => pick(state, CHUNK_SIZES).to_vec(),
                1 => format!("{:x}", piece.len() + 1 + below(state, 16)).into_bytes(),
                2 => format!("{:x}", piece.len().saturating_sub(1 + below(state, piece.len().max(1)))).into_bytes(),
                _ => format!("{:x}", piece.len()).into_bytes(),
            };
            body.extend_from_slice(&size);
            if below(state, 4) == 0 {
                body.extend_from_slice(b";x=y");
            }
            body.extend_from_slice(&eol);
            body.extend_from_slice(piece);
            body.extend_from_slice(&eol);
        }
        match below(state, 6) {
            0 => {} // no last chunk: a body that never ends
            1 => body.extend([b"0".as_slice(), &eol, b"X-Trailer: t", &eol, &eol].concat()),
            _ => body.extend([b"0".as_slice(), &eol, &eol].concat()),
        }
        req.body = body;
        req.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(b"Content-Length"));
        if !req.is_chunked() {
            req.set_header("Transfer-Encoding", b"chunked");
        }
        match below(state, 5) {
            0 => req.set_header("Content-Length", req.body.len().to_string().as_bytes()),
            1 => req.set_header("Content-Length", pick(state, &[b"0".as_slice(), b"5", b"-1"])),
            2 => req.headers.push((b"Transfer-Encoding".to_vec(), pick(state, &[b": gzip".as_slice(), b": chunked", b": identity"]).to_vec())),
            _ => {}
        }
        note_op(state, "chunked");
        true
    }
);

/// The spans of a JSON text's strings, quotes excluded (a lenient scan: a backslash escapes the
/// next byte).
fn json_strings(body: &[u8]) -> Vec<std::ops::Range<usize>> {
    let (mut spans, mut at) = (Vec::new(), 0);
    while let Some(open) = body[at..].iter().position(|&b| b == b'"').map(|p| at + p) {
        let mut i = open + 1;
        while i < body.len() && body[i] != b'"' {
            i += if body[i] == b'\\' { 2 } else { 1 };
        }
        spans.push(open + 1..i.min(body.len()));
        at = i + 1;
        if at >= body.len() {
            break;
        }
    }
    spans
}

/// The spans of a JSON text's values after a `:` (up to the next `,` or `}` at any depth: a
/// lenient scan, good enough to replace scalars and to break structure).
fn json_values(body: &[u8]) -> Vec<std::ops::Range<usize>> {
    // Which bytes are inside a string, in one pass (not a search of the spans per byte: a
    // havoc-grown body can hold thousands of strings).
    let mut in_string = vec![false; body.len()];
    for span in json_strings(body) {
        in_string[span].fill(true);
    }
    (0..body.len())
        .filter(|&i| body[i] == b':' && !in_string[i])
        .map(|colon| {
            let end = (colon + 1..body.len()).find(|&i| matches!(body[i], b',' | b'}') && !in_string[i]);
            colon + 1..end.unwrap_or(body.len())
        })
        .collect()
}

http_mutator!(
    /// Edit a JSON body deep down: escapes (valid, invalid, surrogates, many of them) inside a
    /// string, a value of the wrong type or at a number's edge, a member duplicated or
    /// dropped, deep nesting, bytes after the document.
    JsonDeep, |state, req| {
        if !req.body.trim_ascii_start().starts_with(b"{") && !req.body.trim_ascii_start().starts_with(b"[") {
            req.body = LOGIN_JSON.to_vec();
        }
        let body = &mut req.body;
        let (strings, values) = (json_strings(body), json_values(body));
        match below(state, 6) {
            0 | 1 if !strings.is_empty() => {
                let span = strings[below(state, strings.len())].clone();
                let at = span.start + below(state, span.len() + 1);
                // Around the sizes of students' buffers (32 to 256 bytes): an escape decoded to
                // 2 to 4 bytes that the room check counts as one.
                let times = pick(state, &[1usize, 1, 2, 8, 16, 32, 64, 128]);
                let escape = pick(state, JSON_ESCAPES);
                body.splice(at..at, escape.repeat(times));
            }
            2 if !values.is_empty() => {
                let span = values[below(state, values.len())].clone();
                body.splice(span, pick(state, JSON_VALUES).iter().copied());
            }
            3 if !values.is_empty() => {
                // A member is the string before its `:` and the value after it.
                let value = values[below(state, values.len())].clone();
                let key = strings.iter().rev().find(|s| s.end < value.start).map_or(value.start - 1, |s| s.start - 1);
                let member = body[key..value.end].to_vec();
                if below(state, 2) == 0 {
                    body.splice(value.end..value.end, [b",".as_slice(), &member].concat());
                } else {
                    let end = if body.get(value.end) == Some(&b',') { value.end + 1 } else { value.end };
                    body.drain(key..end);
                }
            }
            4 => {
                let depth = pick(state, &[2usize, 16, 64, 256]);
                let (open, close) = if below(state, 2) == 0 { (b"[".as_slice(), b"]".as_slice()) } else { (br#"{"a":"#.as_slice(), b"}".as_slice()) };
                let inner = std::mem::take(body);
                *body = [open.repeat(depth), inner, close.repeat(depth)].concat();
            }
            _ => body.extend_from_slice(pick(state, JSON_TRAILERS)),
        }
        if !req.is_chunked() && below(state, 4) != 0 {
            req.fix_content_length();
        }
        note_op(state, "json");
        true
    }
);

http_mutator!(
    /// Edit the request target's shape: a percent-encoding (`%00`, `%2f`, `%5c`, invalid,
    /// double, overlong UTF-8, cut short) or a path piece (`//`, `/./`, `/..`, a query, a
    /// fragment) put in at a segment boundary or anywhere, a segment percent-encoded whole, or a
    /// target of another form (absolute, asterisk, authority).
    TargetShape, |state, req| {
        if req.line.len() < 2 {
            req.line.insert(req.line.len().min(1), b"/".to_vec());
        }
        let target = &mut req.line[1];
        match below(state, 4) {
            0 => *target = pick(state, TARGET_FORMS).to_vec(),
            1 => {
                // One segment, every byte encoded (`/index.html` -> `/%69%6E...`).
                let slashes: Vec<usize> = (0..target.len()).filter(|&i| target[i] == b'/').collect();
                let start = if slashes.is_empty() { 0 } else { pick(state, &slashes) + 1 };
                let end = target[start..].iter().position(|&b| b == b'/').map_or(target.len(), |e| start + e);
                let encoded: Vec<u8> = target[start..end].iter().flat_map(|b| format!("%{b:02X}").into_bytes()).collect();
                target.splice(start..end, encoded);
            }
            _ => {
                let piece = pick(state, TARGET_PIECES);
                let boundaries: Vec<usize> =
                    (0..=target.len()).filter(|&i| i == target.len() || target[i] == b'/').collect();
                let at = if below(state, 2) == 0 { pick(state, &boundaries) } else { below(state, target.len() + 1) };
                target.splice(at..at, piece.iter().copied());
            }
        }
        note_op(state, "target");
        true
    }
);

http_mutator!(
    /// Put an integer edge (8 to 64 bits, signed and unsigned, with zeros, spaces or a sign)
    /// where a header holds a number: `Content-Length`, a `Range` bound, a field of an
    /// `If-Modified-Since` date, `Max-Forwards`.
    HeaderNumber, |state, req| {
        // Mostly a header the request already has: the server reached its parser with it.
        let present: Vec<&str> = NUMBER_HEADERS.iter().copied().filter(|n| req.header(n).is_some()).collect();
        let name = if !present.is_empty() && below(state, 4) != 0 { pick(state, &present) } else { pick(state, NUMBER_HEADERS) };
        let (a, b) = (edge_number(state), edge_number(state));
        let value = match name {
            // A start inside any file and an edge for the end is the range whose length
            // overflows (`B - A + 1` kept in an int), an end before a start inside the file
            // one whose length is negative; the other forms edge either bound.
            "Range" => match below(state, 8) {
                0..=2 => format!("bytes={}-{b}", below(state, 2)),
                3 | 4 => {
                    let start = 2 + below(state, 4096);
                    format!("bytes={start}-{}", below(state, start - 1))
                }
                5 => format!("bytes={a}-{b}"),
                6 => format!("bytes={a}-"),
                _ => format!("bytes=-{a}"),
            },
            "If-Modified-Since" => {
                let fields = ["06", "Nov", "1994", "08", "49", "37"];
                let i = below(state, fields.len());
                let mut f = fields.map(str::to_string);
                f[i] = a.trim().to_string();
                format!("Sun, {} {} {} {}:{}:{} GMT", f[0], f[1], f[2], f[3], f[4], f[5])
            }
            _ => a,
        };
        req.set_header(name, value.as_bytes());
        note_op(state, "header-number");
        true
    }
);

http_mutator!(
    /// Break the header block: a folded continuation line, an empty name, a line with no
    /// colon, a name with spaces, a second `Content-Length` or `Host` that disagrees, hundreds
    /// of headers, a header line past 8 KiB.
    HeaderBlock, |state, req| {
        let at = below(state, req.headers.len() + 1);
        let line = |name: &[u8], rest: &[u8]| (name.to_vec(), rest.to_vec());
        match below(state, 7) {
            0 => req.headers.insert(at, line(b" folded", b"")),
            1 => req.headers.insert(at, line(b"", b": empty name")),
            2 => req.headers.insert(at, line(b"NoColonHere", b"")),
            3 => req.headers.insert(at, line(b"Bad Name", b": x")),
            4 => {
                let (name, value) = if below(state, 2) == 0 {
                    ("Content-Length", (req.body.len() + 1 + below(state, 64)).to_string().into_bytes())
                } else {
                    ("Host", b"other.example".to_vec())
                };
                if req.header_index(name).is_none() {
                    req.set_header(name, b"0");
                }
                req.headers.insert(at, line(name.as_bytes(), &[b": ".as_slice(), &value].concat()));
            }
            5 => {
                let n = pick(state, &[33usize, 64, 65, 100, 101, 128, 129]);
                let many = (0..n).map(|i| line(format!("X-H{i}").as_bytes(), b": v"));
                req.headers.splice(at..at, many);
            }
            _ => {
                let len = pick(state, &[8191usize, 8192, 8193]);
                if below(state, 2) == 0 {
                    req.headers.insert(at, line(&vec![b'X'; len], b": v"));
                } else {
                    req.headers.insert(at, line(b"X-Long", &[b": ".as_slice(), &vec![b'v'; len]].concat()));
                }
            }
        }
        note_op(state, "header-block");
        true
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::findings::CurrentOp;
    use crate::fuzz::http::{Conversation, Request};
    use libafl::inputs::{BytesInput, HasMutatorBytes};
    use libafl::mutators::{MutationResult, Mutator};
    use libafl::state::NopState;
    use libafl::HasMetadata;

    const LOGIN: &[u8] = b"POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Length: 45\r\n\r\n{\"username\":\"user0\",\"password\":\"thepassword\"}";

    /// Run `mutator` many times on the login request: every output, and the `op:` name noted.
    fn outputs<M: Mutator<BytesInput, NopState<BytesInput>>>(mut mutator: M) -> (Vec<Vec<u8>>, Vec<String>) {
        let mut state = NopState::new();
        let mut ops = Vec::new();
        let outs = (0..3000)
            .filter_map(|_| {
                state.add_metadata(CurrentOp::new("http"));
                let mut input = BytesInput::new(LOGIN.to_vec());
                let result = mutator.mutate(&mut state, &mut input).unwrap();
                ops.extend(state.metadata::<CurrentOp>().unwrap().mutators.clone());
                (result == MutationResult::Mutated).then(|| input.mutator_bytes().to_vec())
            })
            .collect();
        ops.sort();
        ops.dedup();
        (outs, ops)
    }

    fn first(bytes: &[u8]) -> Request {
        Conversation::parse(bytes).expect("does not parse").requests.remove(0)
    }

    fn any(outs: &[Vec<u8>], what: impl Fn(&[u8]) -> bool) -> bool {
        outs.iter().any(|o| what(o))
    }

    fn has(hay: &[u8], needle: &[u8]) -> bool {
        memchr::memmem::find(hay, needle).is_some()
    }

    #[test]
    fn chunked_bodies_carry_the_data_and_every_size_kind_with_their_headers() {
        let (outs, ops) = outputs(Chunked);
        assert_eq!(ops, ["chunked"]);
        // A well-formed one decodes to the login body and is one request.
        let decoded = |o: &[u8]| {
            let req = first(o);
            req.is_chunked() && chunked(&req.body, b"\r\n").is_some_and(|(_, d)| d == &LOGIN[LOGIN.len() - 45..])
        };
        assert!(any(&outs, decoded), "no well-formed chunked body");
        for size in ["\r\nffffffffffffffff", "\r\n-1", "\r\n7fffffff", "\r\n80000000"] {
            assert!(any(&outs, |o| has(o, size.as_bytes())), "no size {size:?}");
        }
        assert!(any(&outs, |o| has(o, b";x=y\r\n")), "no extension");
        assert!(any(&outs, |o| has(o, b"0\r\nX-Trailer: t\r\n\r\n")), "no trailer");
        assert!(any(&outs, |o| {
            let r = first(o);
            r.is_chunked() && r.header("Content-Length").is_some()
        }));
        assert!(any(&outs, |o| first(o).headers.iter().filter(|(n, _)| n == b"Transfer-Encoding").count() == 2));
        assert!(outs.iter().all(|o| first(o).is_chunked()));
    }

    #[test]
    fn json_bodies_get_escapes_edge_values_duplicates_nesting_and_trailing_bytes() {
        let (outs, ops) = outputs(JsonDeep);
        assert_eq!(ops, ["json"]);
        let body = |o: &[u8]| first(o).body;
        for escape in [
            &br"\u0000"[..],
            br"\ud83d\ude00",
            br#"\""#,
            br"\uzzzz",
            b"\\u20ac\\u20ac\\u20ac\\u20ac\\u20ac\\u20ac\\u20ac\\u20ac",
        ] {
            assert!(
                any(&outs, |o| json_strings(&body(o)).iter().any(|s| has(&body(o)[s.clone()], escape))),
                "{:?}",
                String::from_utf8_lossy(escape)
            );
        }
        for value in ["1e309", "-0", "12345678901234567890", "null", "[]"] {
            assert!(any(&outs, |o| has(&body(o), format!(":{value}").as_bytes())), "{value}");
        }
        assert!(any(&outs, |o| body(o).windows(10).filter(|w| w == br#""username""#).count() == 2), "no duplicate");
        assert!(any(&outs, |o| !has(&body(o), b"username")), "no dropped member");
        assert!(any(&outs, |o| body(o).starts_with(&[b'['; 256])), "no nesting");
        assert!(any(&outs, |o| body(o).ends_with(b"}garbage")), "no trailing bytes");
        // Mostly with a Content-Length that matches.
        let matching = outs
            .iter()
            .filter(|o| first(o).header("Content-Length") == Some(body(o).len().to_string().as_bytes()))
            .count();
        assert!(matching * 2 > outs.len(), "{matching} of {}", outs.len());
    }

    #[test]
    fn targets_get_encodings_path_pieces_and_other_forms() {
        let (outs, ops) = outputs(TargetShape);
        assert_eq!(ops, ["target"]);
        let target = |o: &[u8]| first(o).line[1].clone();
        for piece in ["/api/login%00", "/api%2f", "%5c", "%zz", "%c0%af", "%252e", "//", "/./", "/..", "?a=b", "#frag"]
        {
            assert!(any(&outs, |o| has(&target(o), piece.as_bytes())), "{piece}");
        }
        assert!(any(&outs, |o| target(o) == b"/api/%6C%6F%67%69%6E"), "no segment encoded whole");
        for form in ["*", "http://localhost/index.html", "localhost:80"] {
            assert!(any(&outs, |o| target(o) == form.as_bytes()), "{form}");
        }
    }

    #[test]
    fn number_headers_get_integer_edges_with_zeros_spaces_and_signs() {
        let (outs, ops) = outputs(HeaderNumber);
        assert_eq!(ops, ["header-number"]);
        let value = |o: &[u8], name: &str| {
            first(o).headers.iter().find(|(n, _)| n == name.as_bytes()).map(|(_, v)| v[2..].to_vec())
        };
        for n in ["2147483648", "-2147483649", "18446744073709551616", "000128", " 65536", "+4294967295"] {
            assert!(
                any(&outs, |o| value(o, "Content-Length").as_deref() == Some(n.as_bytes())),
                "Content-Length {n:?}"
            );
        }
        assert!(any(&outs, |o| value(o, "Range")
            .is_some_and(|v| v.starts_with(b"bytes=") && has(&v, b"-9223372036854775809"))));
        // An end before its start (by 2 at least: a negative length).
        assert!(any(&outs, |o| value(o, "Range").is_some_and(|v| {
            let v = String::from_utf8_lossy(&v).into_owned();
            let bounds = v.strip_prefix("bytes=").and_then(|r| r.split_once('-'));
            let parsed = bounds.and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
            parsed.is_some_and(|(a, b)| b + 2 <= a && a < 5000)
        })));
        // A start inside the file and an end at least 2^31 - 1: a length past an int.
        assert!(any(&outs, |o| value(o, "Range").is_some_and(|v| {
            let v = String::from_utf8_lossy(&v).into_owned();
            let end = v.strip_prefix("bytes=0-").or_else(|| v.strip_prefix("bytes=1-"));
            end.and_then(|e| e.trim().parse::<u64>().ok()).is_some_and(|e| e >= 2147483647)
        })));
        // A date field past 32 bits.
        assert!(any(&outs, |o| value(o, "If-Modified-Since").is_some_and(|v| {
            ["4294967296", "9223372036854775807", "18446744073709551615"].iter().any(|n| has(&v, n.as_bytes()))
        })));
        assert!(any(&outs, |o| value(o, "Max-Forwards").is_some_and(|v| {
            let v = String::from_utf8_lossy(&v).into_owned();
            INT_EDGES.contains(&v.trim().trim_start_matches('+').trim_start_matches("000"))
        })));
    }

    #[test]
    fn header_blocks_get_folds_bad_names_duplicates_many_and_long_lines() {
        let (outs, ops) = outputs(HeaderBlock);
        assert_eq!(ops, ["header-block"]);
        for line in [
            &b"\r\n folded\r\n"[..],
            b"\r\n: empty name\r\n",
            b"\r\nNoColonHere\r\n",
            b"\r\nBad Name: x\r\n",
            b"\r\nHost: other.example\r\n",
        ] {
            assert!(any(&outs, |o| has(o, line)), "{:?}", String::from_utf8_lossy(line));
        }
        assert!(any(&outs, |o| first(o).headers.iter().filter(|(n, _)| n == b"Content-Length").count() == 2));
        assert!(any(&outs, |o| first(o).headers.len() > 128));
        assert!(any(&outs, |o| first(o).headers.iter().any(|(n, v)| n.len() + v.len() > 8192)));
        // The request still ends where it did: its body follows the blank line.
        assert!(outs.iter().all(|o| o.ends_with(&LOGIN[LOGIN.len() - 49..])));
    }
}
