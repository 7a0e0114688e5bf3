//! HTTP-aware mutators: they parse the input leniently into pipelined requests, change one
//! thing a student's parser is likely to get wrong, and write raw bytes back (so crash files
//! still replay as they are). Scheduled among LibAFL's havoc and token mutators.

use super::http::Conversation;
use super::http_mutator::{below, http_mutator, pick};
use super::http_structure::{Chunked, HeaderBlock, HeaderNumber, JsonDeep, TargetShape};
use super::names::note_op;
use libafl::inputs::{BytesInput, HasMutatorBytes};
use libafl::mutators::{MutationResult, Mutator, Tokens};
use libafl::state::HasRand;
use libafl::{Error, HasMetadata};
use libafl_bolts::tuples::tuple_list_type;
use libafl_bolts::Named;
use std::borrow::Cow;

const METHODS: &[&[u8]] = &[b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"ASD", b"get", b""];
const PATHS: &[&[u8]] = &[
    b"/",
    b"/index.html",
    b"/api/login",
    b"/api/logout",
    b"/api/video",
    b"/private/secret.html",
    b"/clip.mp4",
    b"/public/index.html",
    b"/api/junk",
    b"/../../etc/passwd",
    b"/index.html%",
    b"/%2e%2e/%2e%2e/",
    b"",
];
const VERSIONS: &[&[u8]] =
    &[b"HTTP/1.0", b"HTTP/1.1", b"HTTP/2.0", b"HTTP/1.", b"HTTP/", b"http/1.1", b"HTTP/1.1 extra", b""];
const NUMBERS: &[&[u8]] = &[
    b"",
    b" ",
    b"-1",
    b"-100000000",
    b"0",
    b"1",
    b"4096",
    b"4294967296",
    b"2147483648",
    b"99999999999999999999",
    b"abc",
    b"+5",
    b"0x10",
    b"1e3",
];
const RANGES: &[&[u8]] = &[
    b"bytes=0-99",
    b"bytes=100-",
    b"bytes=-50",
    b"bytes=2000-100",
    b"bytes=-",
    b"bytes=",
    b"bytes=-0",
    b"bytes=0-99999999999",
    b"bytes=99999999-",
    b"bytes=-99999999",
    b"bytes=5-5,7-9",
    b"items=0-1",
];
/// One step up out of the web root, as servers fail to catch it: plain, percent-encoded (once
/// or twice), with backslashes, or doubled for filters that strip `../` once.
const CLIMBS: &[&[u8]] = &[
    b"../",
    b"%2e%2e/",
    b"..%2f",
    b"%2e%2e%2f",
    b"%2E%2E%2F",
    b"..\\",
    b"....//",
    b"%252e%252e%252f",
    b"%c0%ae%c0%ae/",
];
const PATH_SUFFIXES: &[&[u8]] = &[b"/..", b"%", b"%2", b"%00", b"?a=b", b"#x", b"//"];
const COOKIE_PATHS: &[&[u8]] = &[b"/api/login", b"/api/logout", b"/private/secret.html"];
const JSON_BODIES: &[&[u8]] =
    &[br#"{"username":}"#, br#"{"username":"user0""#, b"{}", b"", br#"{"username":1,"password":true}"#];
const HEADERS: &[(&str, &[u8])] = &[
    ("Content-Length", b"0"),
    ("Cookie", b"auth_token=x"),
    ("Range", b"bytes=0-10"),
    ("Connection", b"keep-alive"),
    ("Connection", b"close"),
    ("Host", b"localhost"),
    ("Transfer-Encoding", b"chunked"),
    ("Content-Type", b"application/json"),
    ("Accept-Encoding", b"identity"),
];

/// Half the time, a header whose name is a dictionary word that reads as one (`Host`,
/// `X-Debug-Token`, the built-in `Cookie: `) and whose value is any dictionary word.
fn dictionary_header<S: HasRand + HasMetadata>(state: &mut S) -> Option<(Vec<u8>, Vec<u8>)> {
    let n = state.metadata::<Tokens>().ok()?.len();
    if n == 0 || below(state, 2) == 0 {
        return None;
    }
    // Most words are no header names: a few draws find one (only it is copied).
    let name = (0..16).find_map(|_| {
        let i = below(state, n);
        header_name(&state.metadata::<Tokens>().ok()?.tokens()[i])
    })?;
    let i = below(state, n);
    Some((name, state.metadata::<Tokens>().ok()?.tokens()[i].clone()))
}

fn header_name(word: &[u8]) -> Option<Vec<u8>> {
    let name = word.strip_suffix(b": ").or_else(|| word.strip_suffix(b":")).unwrap_or(word);
    let reads_as_one =
        name.len() >= 2 && name[0].is_ascii_uppercase() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-');
    reads_as_one.then(|| name.to_vec())
}

http_mutator!(
    /// Swap the method (known, unknown, lower case, empty, very long).
    MethodSwap, |state, req| {
        let method = if below(state, 8) == 0 { vec![b'A'; 2000] } else { pick(state, METHODS).to_vec() };
        match req.line.first_mut() {
            Some(m) => *m = method,
            None => req.line.push(method),
        }
        true
    }
);

http_mutator!(
    /// Edit the target: API paths, traversal, percent-encoding, long segments, none at all.
    PathEdit, |state, req| {
        if req.line.len() < 2 {
            req.line.insert(req.line.len().min(1), b"/".to_vec());
        }
        let path = &mut req.line[1];
        match below(state, 6) {
            5 => {
                // Climb out of the root in front of the file asked for, which keeps its name and
                // extension (servers route by them): `/clip.mp4` -> `/%2e%2e/%2e%2e/clip.mp4`.
                let (climb, steps) = (pick(state, CLIMBS), 1 + below(state, 8));
                let file = path.strip_prefix(b"/").unwrap_or(path).to_vec();
                *path = b"/".iter().chain(climb.repeat(steps).iter()).chain(&file).copied().collect();
            }
            0 => *path = pick(state, PATHS).to_vec(),
            1 => path.extend_from_slice(pick(state, PATH_SUFFIXES)),
            2 => path.extend(std::iter::repeat_n(b'A', 1 << (4 + below(state, 13)))),
            3 => {
                // Percent-encode one byte.
                if !path.is_empty() {
                    let at = below(state, path.len());
                    let encoded = format!("%{:02X}", path[at]).into_bytes();
                    path.splice(at..=at, encoded);
                }
            }
            _ => {
                req.line.remove(1);
            }
        }
        true
    }
);

http_mutator!(
    /// Change or drop the HTTP version.
    VersionEdit, |state, req| {
        let version = pick(state, VERSIONS).to_vec();
        while req.line.len() < 3 {
            req.line.push(Vec::new());
        }
        if version.is_empty() {
            req.line.truncate(2);
        } else {
            req.line[2] = version;
        }
        true
    }
);

http_mutator!(
    /// Insert a header students handle (Content-Length, Cookie, Range, Connection, ...), or one
    /// named by the dictionary (the server's own names among them) with a dictionary word.
    HeaderInsert, |state, req| {
        let (name, value) = match dictionary_header(state) {
            Some(header) => header,
            None => {
                let (name, value) = pick(state, HEADERS);
                (name.as_bytes().to_vec(), value.to_vec())
            }
        };
        // Now and then a long value (64 B to 64 KiB): fixed-size header buffers, and buffers
        // that grow (and move) under pointers into them.
        let value = match below(state, 4) {
            0 => vec![b'A'; 1 << (6 + below(state, 11))],
            _ => value.to_vec(),
        };
        let at = below(state, req.headers.len() + 1);
        req.headers.insert(at, (name, [b": ".as_slice(), &value].concat()));
        true
    }
);

http_mutator!(
    /// Delete, duplicate or swap header lines.
    HeaderShuffle, |state, req| {
        let n = req.headers.len();
        if n == 0 {
            return false;
        }
        let (a, b) = (below(state, n), below(state, n));
        match below(state, 3) {
            0 => {
                req.headers.remove(a);
            }
            1 => {
                let copy = req.headers[a].clone();
                req.headers.insert(b, copy);
            }
            _ => req.headers.swap(a, b),
        }
        true
    }
);

http_mutator!(
    /// Edge values in Content-Length and Range: empty, negative, huge, inverted, mismatched.
    NumberEdit, |state, req| {
        if below(state, 2) == 0 {
            let value = match below(state, 3) {
                0 => (req.body.len() + 1 + below(state, 200)).to_string().into_bytes(),
                1 => req.body.len().saturating_sub(1 + below(state, 8)).to_string().into_bytes(),
                _ => pick(state, NUMBERS).to_vec(),
            };
            match req.header_index("Content-Length") {
                // Keep the exact spelling students' parsers see (`Content-Length:` + value).
                Some(i) => req.headers[i].1 = [b":".as_slice(), if value.is_empty() { b"" } else { b" " }, &value].concat(),
                None => req.set_header("Content-Length", &value),
            }
        } else {
            let range = pick(state, RANGES);
            req.set_header("Range", range);
            if req.line.len() > 1 && below(state, 2) == 0 {
                req.line[1] = b"/clip.mp4".to_vec();
            }
        }
        true
    }
);

http_mutator!(
    /// Mangle cookies and tokens: no `=`, spaces around `=`, several cookies, bit flips,
    /// truncation, a token grown past any fixed buffer.
    CookieMangle, |state, req| {
        let token = req.header("Cookie").map(<[u8]>::to_vec).unwrap_or_else(|| b"auth_token=eyJhbGciOiJIUzI1NiJ9.e30.sig".to_vec());
        let mut cookie = token.clone();
        match below(state, 7) {
            0 => cookie.retain(|&b| b != b'='),
            1 => cookie = cookie.iter().flat_map(|&b| if b == b'=' { b" = ".to_vec() } else { vec![b] }).collect(),
            2 => cookie = [b"a=b; ".as_slice(), &cookie, b"; theme=dark; junk"].concat(),
            3 => {
                if !cookie.is_empty() {
                    let at = below(state, cookie.len());
                    cookie[at] ^= 1 << below(state, 8);
                }
            }
            4 => cookie.truncate(below(state, cookie.len() + 1)),
            5 => {
                // Grow the value to 32 B .. 4 KiB by repeating it: buffers sized for a real token
                // (a few dozen bytes) are passed by a few times their size, not by a few bytes.
                let value = cookie.iter().position(|&b| b == b'=').map_or(0, |i| i + 1);
                let unit = if cookie.len() > value { cookie[value..].to_vec() } else { b"A".to_vec() };
                let len = 1 << (5 + below(state, 8));
                cookie.truncate(value);
                cookie.extend(unit.iter().cycle().take(len));
            }
            _ => cookie.clear(),
        }
        req.set_header("Cookie", &cookie);
        if req.line.len() > 1 && below(state, 3) == 0 {
            req.line[1] = pick(state, COOKIE_PATHS).to_vec();
        }
        true
    }
);

http_mutator!(
    /// Edit a JSON body (drop a value, break quotes, truncate, add keys), keeping
    /// Content-Length consistent or not.
    JsonEdit, |state, req| {
        if req.body.is_empty() {
            req.body = br#"{"username":"user0","password":"thepassword"}"#.to_vec();
        }
        let body = &mut req.body;
        match below(state, 6) {
            0 => {
                // Drop a value: `"key":` followed directly by `,` or `}`.
                if let Some(colon) = body.iter().position(|&b| b == b':') {
                    let end = body[colon..].iter().position(|&b| b == b',' || b == b'}').map_or(body.len(), |e| colon + e);
                    body.drain(colon + 1..end);
                }
            }
            1 => body.retain(|&b| b != b'"'),
            2 => body.truncate(below(state, body.len() + 1)),
            3 => {
                let at = body.len().saturating_sub(1);
                body.splice(at..at, br#","extra":[1,{"a":null}],"n":-1"#.iter().copied());
            }
            4 => body.splice(0..0, b"[".iter().copied()).for_each(drop),
            _ => *body = pick(state, JSON_BODIES).to_vec(),
        }
        if below(state, 2) == 0 {
            req.fix_content_length();
        }
        true
    }
);

http_mutator!(
    /// Line endings: CRLF to LF or back, or drop the blank line ending the headers.
    LineEndings, |state, req| {
        match below(state, 3) {
            0 => req.eol = b"\n".to_vec(),
            1 => req.eol = b"\r\n".to_vec(),
            _ => req.terminated = !req.terminated,
        }
        true
    }
);

/// The lengths [`LongField`] grows a field to: both sides of the buffer sizes students pick
/// (256 .. 64 Ki), and the grading test's 80 KiB request target.
pub const LONG_LENGTHS: &[usize] =
    &[255, 256, 257, 511, 512, 513, 1023, 1024, 1025, 4095, 4096, 4097, 8191, 8192, 8193, 65535, 65536, 65537, 81920];

/// Grow `field` to one of [`LONG_LENGTHS`] longer than it, with its own bytes repeated or
/// with `A`s; false when it is longer than all.
fn grow<S: HasRand>(state: &mut S, field: &mut Vec<u8>) -> bool {
    let longer: Vec<usize> = LONG_LENGTHS.iter().copied().filter(|&l| l > field.len()).collect();
    if longer.is_empty() {
        return false;
    }
    let len = pick(state, &longer);
    let unit = if field.is_empty() || below(state, 2) == 0 { b"A".to_vec() } else { field.clone() };
    *field = unit.iter().cycle().take(len).copied().collect();
    true
}

http_mutator!(
    /// Grow the request target, a header value, a cookie's value or the body to a boundary
    /// length (`LONG_LENGTHS`), exactly: fixed-size buffers overflow at one of them.
    LongField, |state, req| {
        let grown = match below(state, 4) {
            0 => {
                if req.line.len() < 2 {
                    req.line.insert(req.line.len().min(1), b"/".to_vec());
                }
                grow(state, &mut req.line[1])
            }
            1 => {
                // Not the cookie (its values are the next case).
                let mut others: Vec<usize> =
                    (0..req.headers.len()).filter(|&i| !req.headers[i].0.eq_ignore_ascii_case(b"Cookie")).collect();
                if others.is_empty() {
                    req.headers.push((b"User-Agent".to_vec(), b": ".to_vec()));
                    others.push(req.headers.len() - 1);
                }
                let i = pick(state, &others);
                let rest = &mut req.headers[i].1;
                // The value starts after the `:` and the spaces that follow it.
                let colon = usize::from(rest.first() == Some(&b':'));
                let start = colon + rest[colon..].iter().take_while(|&&b| b == b' ').count();
                let mut value = rest.split_off(start);
                let grown = grow(state, &mut value);
                rest.extend_from_slice(&value);
                grown
            }
            2 => {
                let cookie = req.header("Cookie").map_or_else(|| b"auth_token=".to_vec(), <[u8]>::to_vec);
                let mut pairs: Vec<Vec<u8>> = cookie.split(|&b| b == b';').map(<[u8]>::to_vec).collect();
                let i = below(state, pairs.len());
                let value = pairs[i].iter().position(|&b| b == b'=').map_or(0, |e| e + 1);
                let mut grown_value = pairs[i].split_off(value);
                let grown = grow(state, &mut grown_value);
                pairs[i].extend_from_slice(&grown_value);
                req.set_header("Cookie", &pairs.join(&b';'));
                grown
            }
            _ => {
                let grown = grow(state, &mut req.body);
                req.fix_content_length();
                grown
            }
        };
        if grown {
            note_op(state, "long-field");
        }
        grown
    }
);

/// Duplicate, drop or cut requests of a pipelined connection.
#[derive(Debug, Default)]
pub struct Pipeline;

impl Named for Pipeline {
    fn name(&self) -> &Cow<'static, str> {
        static NAME: Cow<'static, str> = Cow::Borrowed("Pipeline");
        &NAME
    }
}

impl<S: HasRand> Mutator<BytesInput, S> for Pipeline {
    fn mutate(&mut self, state: &mut S, input: &mut BytesInput) -> Result<MutationResult, Error> {
        let Some(mut conv) = Conversation::parse(input.mutator_bytes()) else { return Ok(MutationResult::Skipped) };
        let n = conv.requests.len();
        let i = below(state, n);
        match below(state, 3) {
            0 => {
                let copy = conv.requests[i].clone();
                conv.requests.insert(i, copy);
            }
            1 if n > 1 => {
                conv.requests.remove(i);
            }
            _ => {
                // Cut the connection somewhere inside request i.
                let mut bytes = Vec::new();
                for r in &conv.requests[..i] {
                    r.write(&mut bytes);
                }
                let mut last = Vec::new();
                conv.requests[i].write(&mut last);
                bytes.extend_from_slice(&last[..below(state, last.len())]);
                *input = BytesInput::new(bytes);
                return Ok(MutationResult::Mutated);
            }
        }
        *input = BytesInput::new(conv.to_bytes());
        Ok(MutationResult::Mutated)
    }

    fn post_exec(&mut self, _: &mut S, _: Option<libafl::corpus::CorpusId>) -> Result<(), Error> {
        Ok(())
    }
}

/// The HTTP mutators as a LibAFL tuple list.
pub type HttpMutations = tuple_list_type!(
    MethodSwap,
    PathEdit,
    VersionEdit,
    HeaderInsert,
    HeaderShuffle,
    NumberEdit,
    CookieMangle,
    JsonEdit,
    LineEndings,
    Pipeline,
    LongField,
    Chunked,
    JsonDeep,
    TargetShape,
    HeaderNumber,
    HeaderBlock
);

/// All HTTP mutators, to merge with `havoc_mutations()`.
pub fn http_mutations() -> HttpMutations {
    HttpMutations::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libafl::inputs::BytesInput;
    use libafl::state::NopState;

    const LOGIN: &[u8] = b"POST /api/login HTTP/1.1\r\nHost: localhost\r\nCookie: auth_token=abc.def.ghi\r\nContent-Length: 45\r\n\r\n{\"username\":\"user0\",\"password\":\"thepassword\"}GET /index.html HTTP/1.0\r\n\r\n";

    /// Run `mutator` many times on the login conversation; return every output.
    fn outputs<M: Mutator<BytesInput, NopState<BytesInput>>>(mut mutator: M) -> Vec<Vec<u8>> {
        let mut state = NopState::new();
        (0..2000)
            .filter_map(|_| {
                let mut input = BytesInput::new(LOGIN.to_vec());
                let result = mutator.mutate(&mut state, &mut input).unwrap();
                (result == MutationResult::Mutated).then(|| input.mutator_bytes().to_vec())
            })
            .collect()
    }

    fn parsed(bytes: &[u8]) -> Conversation {
        Conversation::parse(bytes).unwrap_or_else(|| panic!("does not parse: {:?}", String::from_utf8_lossy(bytes)))
    }

    #[test]
    fn structural_mutators_keep_valid_http() {
        let methods: Vec<Vec<u8>> = outputs(MethodSwap)
            .iter()
            .flat_map(|o| parsed(o).requests.iter().map(|r| r.method().to_vec()).collect::<Vec<_>>())
            .collect();
        assert!(methods.iter().any(|m| m == b"ASD") && methods.iter().any(|m| m.len() == 2000), "{methods:?}");
        let inserted = outputs(HeaderInsert);
        assert!(inserted.iter().any(|o| o.len() > LOGIN.len() + 8192), "no long header value");
        for out in inserted.into_iter().chain(outputs(HeaderShuffle)) {
            // A `Transfer-Encoding: chunked` put before a body that is no chunks makes the rest
            // of the connection its body.
            let requests = if parsed(&out).requests[0].is_chunked() { 1 } else { 2 };
            assert_eq!(parsed(&out).requests.len(), requests, "{:?}", String::from_utf8_lossy(&out));
        }
        let versions: Vec<Vec<u8>> = outputs(VersionEdit)
            .iter()
            .map(|o| parsed(o).requests[0].line.get(2).cloned().unwrap_or_default())
            .collect();
        assert!(versions.iter().any(|v| v == b"HTTP/2.0"));
    }

    #[test]
    fn header_insert_names_headers_after_dictionary_words() {
        let mut state = NopState::<BytesInput>::new();
        let words: Vec<Vec<u8>> = [&b"X-Debug-Token"[..], b"dbg-7f3a91c2", b"Cookie: ", b"/api/login", b"lower-case"]
            .iter()
            .map(|w| w.to_vec())
            .collect();
        state.add_metadata(Tokens::from(words));
        let mut headers = std::collections::HashSet::new();
        for _ in 0..2000 {
            let mut input = BytesInput::new(LOGIN.to_vec());
            HeaderInsert.mutate(&mut state, &mut input).unwrap();
            for request in parsed(input.mutator_bytes()).requests {
                headers.extend(request.headers.into_iter().map(|(n, _)| String::from_utf8(n).unwrap()));
            }
        }
        assert!(headers.contains("X-Debug-Token") && headers.contains("Cookie") && headers.contains("Range"));
        assert!(!headers.iter().any(|h| h.starts_with('/') || h.starts_with("lower") || h.starts_with("dbg")));
        let mut input = BytesInput::new(LOGIN.to_vec());
        while !String::from_utf8_lossy(input.mutator_bytes()).contains("X-Debug-Token: dbg-7f3a91c2\r\n") {
            input = BytesInput::new(LOGIN.to_vec());
            HeaderInsert.mutate(&mut state, &mut input).unwrap();
        }
    }

    #[test]
    fn number_edit_produces_empty_negative_and_mismatched_lengths_and_inverted_ranges() {
        let all = outputs(NumberEdit);
        let lengths: Vec<Vec<u8>> = all
            .iter()
            .filter_map(|o| parsed(o).requests.iter().find_map(|r| r.header("Content-Length").map(<[u8]>::to_vec)))
            .collect();
        assert!(lengths.iter().any(|v| v.is_empty()), "no empty Content-Length");
        assert!(lengths.iter().any(|v| v.starts_with(b"-")), "no negative Content-Length");
        assert!(
            lengths.iter().any(|v| v != b"45" && std::str::from_utf8(v).is_ok_and(|s| s.parse::<u64>().is_ok())),
            "no mismatch"
        );
        assert!(all.iter().any(|o| o.windows(19).any(|w| w == b"Range: bytes=2000-1")), "no inverted range");
        assert!(
            all.iter().any(|o| String::from_utf8_lossy(o).contains("Content-Length:\r\n")),
            "no `Content-Length:` without value"
        );
    }

    #[test]
    fn cookie_mangle_breaks_equals_and_grows_tokens() {
        let cookies: Vec<Vec<u8>> = outputs(CookieMangle)
            .iter()
            .map(|o| parsed(o).requests.iter().find_map(|r| r.header("Cookie").map(<[u8]>::to_vec)).unwrap())
            .collect();
        assert!(cookies.iter().any(|c| !c.contains(&b'=') && !c.is_empty()));
        assert!(cookies.iter().any(|c| c.windows(3).any(|w| w == b" = ")));
        // Grown past a few hundred bytes, still one `auth_token=` made of the token's own bytes.
        assert!(cookies.iter().any(|c| c.len() > 1000
            && c.starts_with(b"auth_token=abc.def.ghiabc.def")
            && c.windows(11).filter(|w| w == b"auth_token=").count() == 1));
        assert!(cookies.iter().any(|c| c.contains(&b';')));
    }

    #[test]
    fn json_edit_keeps_or_breaks_content_length() {
        let all = outputs(JsonEdit);
        let (mut consistent, mut mismatched) = (0, 0);
        for o in &all {
            let c = parsed(o);
            let r = &c.requests[0];
            let declared: usize = std::str::from_utf8(r.header("Content-Length").unwrap()).unwrap().parse().unwrap();
            if declared == r.body.len() && c.rest.is_empty() {
                consistent += 1;
            } else {
                mismatched += 1;
            }
        }
        assert!(consistent > 0 && mismatched > 0, "{consistent} / {mismatched}");
        assert!(all.iter().any(|o| o.windows(12).any(|w| w == br#""username":,"#)));
    }

    #[test]
    fn path_line_ending_and_pipeline_edits() {
        let paths = outputs(PathEdit);
        assert!(paths.iter().any(|o| o.windows(3).any(|w| w == b"/..")));
        // Climbs in front of the file asked for, which is kept.
        let climbed = |prefix: &[u8]| {
            paths.iter().any(|o| o.starts_with(prefix) && o.windows(19).any(|w| w == b"api/login HTTP/1.1\r"))
        };
        assert!(climbed(b"POST /%2e%2e/") && climbed(b"POST /../") && climbed(b"POST /..%2f"));
        assert!(paths.iter().any(|o| o.len() > LOGIN.len() + 1000));
        assert!(paths.iter().any(|o| parsed(o).requests.iter().any(|r| r.line.len() == 2)));
        let endings = outputs(LineEndings);
        assert!(endings.iter().any(|o| o.starts_with(b"POST /api/login HTTP/1.1\nHost")));
        let pipes = outputs(Pipeline);
        assert!(pipes.iter().any(|o| Conversation::parse(o).is_some_and(|c| c.requests.len() == 3)));
        assert!(pipes.iter().any(|o| o.len() < LOGIN.len()));
    }
}
