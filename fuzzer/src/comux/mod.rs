//! Test cases of several connections (comux files, read by [`contract::comux`]) on the
//! fuzzer's side: [`case`] is a test case in an owned form that can be edited and written back,
//! [`play`] plays one over real TCP against a server started normally (`fuzzer send`);
//! [`kept_open`] turns a request into a connection kept open after it.

pub mod case;
pub mod form;
pub mod play;

use contract::comux::{chunk_header, header, KEEP_OPEN};

/// `request` as one connection kept open after it, until the server waits for more (as `curl`
/// and browsers keep theirs): a comux file of one `KEEP_OPEN` chunk.
pub fn kept_open(request: &[u8]) -> Vec<u8> {
    let mut file = header(1, 1).to_vec();
    file.extend_from_slice(&chunk_header(0, request.len() as u64, 0, KEEP_OPEN));
    file.extend_from_slice(request);
    file
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_kept_open_request_is_one_chunk_with_the_flag() {
        let file = super::kept_open(b"GET / HTTP/1.0\r\n\r\n");
        let parsed = contract::comux::parse(&file).unwrap();
        let chunks: Vec<_> = parsed.chunks().collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!((chunks[0].conn, chunks[0].flags, chunks[0].data), (0, contract::comux::KEEP_OPEN, &b"GET / HTTP/1.0\r\n\r\n"[..]));
    }
}
