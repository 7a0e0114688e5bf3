//! comux: one test case of several connections (the format of the course's later fuzzing
//! interface, gurthang, so that its files and ours interoperate).
//!
//! Little-endian. A header: magic [`MAGIC`], u32 version (0), u32 num_conns, u32 num_chunks;
//! then num_chunks chunks: u32 conn_id, u64 length, u32 sched, u32 flags, `length` bytes of data.
//! Chunks are played in ascending `sched` order (file order between equals); a connection opens
//! at its first chunk and, unless its last chunk says [`KEEP_OPEN`], is half-closed after it.
//!
//! A test case that does not start with the magic is one connection's bytes, sent whole.
//! Reading is lenient, as a fuzzer's inputs need: a chunk whose header is cut short or names a
//! connection past num_conns (or past [`MAX_CONNS`]) ends the file there, and a chunk whose
//! data is cut short keeps what there is. Every reader (the preload's client, `fuzzer send`,
//! `fuzzer hex`, the mutators) goes through [`parse`], so a file means one thing everywhere.

/// The first 8 bytes of a comux file.
pub const MAGIC: &[u8; 8] = b"comux!!!";
/// Bytes of the file header and of each chunk header.
pub const HEADER_LEN: usize = 20;
pub const CHUNK_HEADER_LEN: usize = 20;
/// Connections one test case may open (the client polls them all at once).
pub const MAX_CONNS: u32 = 64;

/// gurthang's: read the connection's reply before the next chunk is sent. Here: wait until the
/// server has done what it does with this chunk (it waits again, or closed the connection).
pub const AWAIT: u32 = 0x1;
/// gurthang's NO_SHUTDOWN: no half-close after the connection's last chunk. Here the connection
/// behaves as `curl` and browsers do: it is half-closed only once the server, having received
/// everything, waits for more.
pub const KEEP_OPEN: u32 = 0x2;
/// Ours: send this chunk one byte per `send`, letting the server read each before the next;
/// its first [`BYTEWISE_MAX`] bytes, the rest at once (a long field grown on a byte-wise chunk
/// would otherwise cost seconds a run).
pub const BYTEWISE: u32 = 0x4;
/// The bytes of a `BYTEWISE` chunk sent one by one: a grading test's whole request. Each costs
/// a wake-up of the server (about 30 µs): byte-wise queue entries of 1,024 such bytes halved
/// a campaign's rate on the sample server.
pub const BYTEWISE_MAX: usize = 256;
/// Ours: after this chunk, close abortively (`SO_LINGER {1, 0}`: a RST) without reading what
/// is pending; the connection's later chunks are not sent.
pub const RESET: u32 = 0x8;
/// Every flag this version knows.
pub const FLAGS: u32 = AWAIT | KEEP_OPEN | BYTEWISE | RESET;

/// One chunk: what to send on which connection, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub conn: u32,
    pub sched: u32,
    pub flags: u32,
    pub data: &'a [u8],
}

/// A parsed comux file: a view of its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Comux<'a> {
    /// Connections the header declares (chunks name connections below it).
    pub num_conns: u32,
    /// The chunk headers and data, after the file header.
    body: &'a [u8],
    /// Chunks that are whole enough to play (at most the header's num_chunks).
    len: usize,
}

/// Whether `bytes` is a comux file (else: one connection's bytes).
pub fn is_comux(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// Parse a comux file; None when `bytes` is not one (no magic, or a header cut short).
pub fn parse(bytes: &[u8]) -> Option<Comux<'_>> {
    if !is_comux(bytes) || bytes.len() < HEADER_LEN {
        return None;
    }
    let num_conns = u32_at(bytes, 12).min(MAX_CONNS);
    let num_chunks = u32_at(bytes, 16) as usize;
    let mut comux = Comux { num_conns, body: &bytes[HEADER_LEN..], len: usize::MAX };
    comux.len = comux.raw_chunks().take(num_chunks).count();
    Some(comux)
}

impl<'a> Comux<'a> {
    /// Chunks in file order.
    pub fn chunks(&self) -> impl Iterator<Item = Chunk<'a>> + 'a {
        self.raw_chunks().take(self.len)
    }

    /// How many chunks there are.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk at file position `index`.
    pub fn chunk(&self, index: usize) -> Option<Chunk<'a>> {
        self.chunks().nth(index)
    }

    /// File positions of the chunks in the order they are played: ascending `sched`, file order
    /// between equals. Without allocating (quadratic in the chunks, which are few).
    pub fn schedule(&self) -> impl Iterator<Item = usize> + 'a {
        let this = *self;
        let mut last: Option<(u32, usize)> = None;
        core::iter::from_fn(move || {
            let next = this
                .chunks()
                .enumerate()
                .map(|(i, c)| (c.sched, i))
                .filter(|key| last.is_none_or(|l| *key > l))
                .min()?;
            last = Some(next);
            Some(next.1)
        })
    }

    /// Whether the chunk at file position `index` is its connection's last in the schedule.
    pub fn is_last_of_conn(&self, index: usize) -> bool {
        let Some(me) = self.chunk(index) else { return false };
        let key = (me.sched, index);
        !self.chunks().enumerate().any(|(i, c)| c.conn == me.conn && (c.sched, i) > key)
    }

    fn raw_chunks(&self) -> impl Iterator<Item = Chunk<'a>> + 'a {
        let (mut rest, num_conns) = (self.body, self.num_conns);
        core::iter::from_fn(move || {
            if rest.len() < CHUNK_HEADER_LEN {
                return None;
            }
            let conn = u32_at(rest, 0);
            if conn >= num_conns {
                return None;
            }
            let len = u64_at(rest, 4).min((rest.len() - CHUNK_HEADER_LEN) as u64) as usize;
            let chunk = Chunk {
                conn,
                sched: u32_at(rest, 12),
                flags: u32_at(rest, 16),
                data: &rest[CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + len],
            };
            rest = &rest[CHUNK_HEADER_LEN + len..];
            Some(chunk)
        })
    }
}

/// The file header for `num_conns` connections and `num_chunks` chunks.
pub fn header(num_conns: u32, num_chunks: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[12..16].copy_from_slice(&num_conns.to_le_bytes());
    h[16..20].copy_from_slice(&num_chunks.to_le_bytes());
    h
}

/// A chunk's header; its `len` bytes of data follow it.
pub fn chunk_header(conn: u32, len: u64, sched: u32, flags: u32) -> [u8; CHUNK_HEADER_LEN] {
    let mut h = [0u8; CHUNK_HEADER_LEN];
    h[..4].copy_from_slice(&conn.to_le_bytes());
    h[4..12].copy_from_slice(&len.to_le_bytes());
    h[12..16].copy_from_slice(&sched.to_le_bytes());
    h[16..20].copy_from_slice(&flags.to_le_bytes());
    h
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn file(num_conns: u32, chunks: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
        let mut f = header(num_conns, chunks.len() as u32).to_vec();
        for &(conn, sched, flags, data) in chunks {
            f.extend_from_slice(&chunk_header(conn, data.len() as u64, sched, flags));
            f.extend_from_slice(data);
        }
        f
    }

    #[test]
    fn raw_bytes_are_not_comux() {
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").is_none());
        assert!(parse(b"comux!!!\0\0").is_none(), "a header cut short");
    }

    #[test]
    fn chunks_are_played_by_sched_then_file_order() {
        let f = file(2, &[(0, 5, 0, b"a"), (1, 1, AWAIT, b"b"), (0, 1, 0, b"c"), (1, 9, KEEP_OPEN, b"d")]);
        let c = parse(&f).unwrap();
        assert_eq!((c.num_conns, c.len()), (2, 4));
        let order: Vec<usize> = c.schedule().collect();
        assert_eq!(order, [1, 2, 0, 3]);
        assert_eq!(c.chunk(1).unwrap(), Chunk { conn: 1, sched: 1, flags: AWAIT, data: b"b" });
        assert!(c.is_last_of_conn(0) && c.is_last_of_conn(3));
        assert!(!c.is_last_of_conn(1) && !c.is_last_of_conn(2));
    }

    #[test]
    fn broken_files_keep_what_can_be_played() {
        let mut f = file(2, &[(0, 0, 0, b"GET /"), (1, 1, 0, b"HEAD /")]);
        f.truncate(f.len() - 3);
        let c = parse(&f).unwrap();
        assert_eq!(c.chunks().map(|c| c.data).collect::<Vec<_>>(), [&b"GET /"[..], b"HEA"]);
        let f = file(1, &[(0, 0, 0, b"x"), (3, 1, 0, b"y"), (0, 2, 0, b"z")]);
        assert_eq!(parse(&f).unwrap().len(), 1, "a chunk of an undeclared connection ends the file");
        let mut f = file(1, &[(0, 0, 0, b"x"), (0, 1, 0, b"y")]);
        f[16] = 1; // the header says one chunk
        assert_eq!(parse(&f).unwrap().len(), 1);
    }
}
