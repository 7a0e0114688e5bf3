//! Test cases of several connections (comux files, read by [`contract::comux`]) on the
//! fuzzer's side: [`Comux`] is one in an owned form that the mutators and the minimizer edit,
//! read with [`Comux::from_bytes`] and written back with [`Comux::to_bytes`]; [`play`] plays one
//! over real TCP against a server started normally (`fuzzer send`); [`kept_open`] turns a
//! request into a connection kept open after it.
//!
//! A test case without the magic is one connection's bytes sent whole: it reads as one
//! connection with one chunk and no flags, and that shape is written back as the raw bytes, so
//! a single polite connection stays a plain request file.

pub mod play;

use contract::comux::{self as format, FLAGS, KEEP_OPEN};

/// One chunk: what one connection sends at its turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub conn: u32,
    /// `contract::comux` flags (AWAIT, KEEP_OPEN, BYTEWISE, RESET).
    pub flags: u32,
    pub data: Vec<u8>,
}

/// A test case of `conns` connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comux {
    /// Connections declared; chunks name connections below it. A connection opens at its first
    /// chunk (a declared connection without chunks never opens).
    pub conns: u32,
    /// The chunks in the order they are played. Their `sched` in the file is their position
    /// here: the order is the only thing `sched` means.
    pub chunks: Vec<Chunk>,
}

impl Comux {
    /// One connection sending `data` whole (a test case without the magic).
    pub fn raw(data: Vec<u8>) -> Comux {
        Comux { conns: 1, chunks: vec![Chunk { conn: 0, flags: 0, data }] }
    }

    /// Read a test case the way every reader does (`contract::comux::parse`): a comux file's
    /// playable chunks in play order, or else the bytes as one connection.
    pub fn from_bytes(bytes: &[u8]) -> Comux {
        let Some(file) = format::parse(bytes) else { return Comux::raw(bytes.to_vec()) };
        let chunks = file
            .schedule()
            .filter_map(|i| file.chunk(i))
            .map(|c| Chunk { conn: c.conn, flags: c.flags & FLAGS, data: c.data.to_vec() })
            .collect();
        Comux { conns: file.num_conns, chunks }
    }

    /// Whether [`Comux::to_bytes`] writes the raw bytes of the only connection: one chunk, no
    /// flags, and data that does not itself start with the magic.
    pub fn is_raw(&self) -> bool {
        match self.chunks.as_slice() {
            [only] => self.conns == 1 && only.conn == 0 && only.flags == 0 && !format::is_comux(&only.data),
            _ => false,
        }
    }

    /// The test case's bytes: the raw data for one plain connection, else a comux file.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.is_raw() {
            return self.chunks[0].data.clone();
        }
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&format::header(self.conns, self.chunks.len() as u32));
        for (sched, chunk) in self.chunks.iter().enumerate() {
            out.extend_from_slice(&format::chunk_header(
                chunk.conn,
                chunk.data.len() as u64,
                sched as u32,
                chunk.flags,
            ));
            out.extend_from_slice(&chunk.data);
        }
        out
    }

    /// The length of [`Comux::to_bytes`], without writing it.
    pub fn encoded_len(&self) -> usize {
        if self.is_raw() {
            return self.chunks[0].data.len();
        }
        let data: usize = self.chunks.iter().map(|c| c.data.len()).sum();
        format::HEADER_LEN + self.chunks.len() * format::CHUNK_HEADER_LEN + data
    }

    /// Positions (in play order) of connection `conn`'s chunks.
    pub fn chunks_of(&self, conn: u32) -> impl Iterator<Item = usize> + '_ {
        self.chunks.iter().enumerate().filter(move |(_, c)| c.conn == conn).map(|(i, _)| i)
    }

    /// The position of connection `conn`'s last chunk.
    pub fn last_of(&self, conn: u32) -> Option<usize> {
        self.chunks_of(conn).last()
    }

    /// Whether the chunk at `at` is its connection's last.
    pub fn is_last_of_conn(&self, at: usize) -> bool {
        self.last_of(self.chunks[at].conn) == Some(at)
    }

    /// Connection `conn`'s data, all chunks together.
    pub fn data_of(&self, conn: u32) -> Vec<u8> {
        self.chunks_of(conn).flat_map(|i| self.chunks[i].data.iter().copied()).collect()
    }

    /// Add a connection whose chunks (flags, data) go to positions `at` (ascending, each a
    /// position in the final play order); returns its id.
    pub fn add_conn(&mut self, chunks: Vec<(u32, Vec<u8>)>, at: &[usize]) -> u32 {
        assert_eq!(chunks.len(), at.len(), "one position per chunk");
        let conn = self.conns;
        self.conns += 1;
        for ((flags, data), &at) in chunks.into_iter().zip(at) {
            self.chunks.insert(at.min(self.chunks.len()), Chunk { conn, flags, data });
        }
        conn
    }

    /// Remove connection `conn` and its chunks; the connections after it move down one id.
    pub fn remove_conn(&mut self, conn: u32) {
        self.chunks.retain(|c| c.conn != conn);
        for c in &mut self.chunks {
            if c.conn > conn {
                c.conn -= 1;
            }
        }
        self.conns -= 1;
    }

    /// Connections renumbered 0.. in the order they first play, and only those declared: after
    /// chunks were removed, no connection is declared that nothing is sent on. How it plays
    /// does not change, and equal test cases are then written the same.
    pub fn compact(&mut self) {
        let mut order: Vec<u32> = Vec::new();
        for c in &mut self.chunks {
            let id = order.iter().position(|&o| o == c.conn).unwrap_or_else(|| {
                order.push(c.conn);
                order.len() - 1
            });
            c.conn = id as u32;
        }
        self.conns = order.len() as u32;
    }

    /// Whether every chunk names a declared connection and KEEP_OPEN sits only on a
    /// connection's last chunk (where it means something).
    pub fn is_consistent(&self) -> bool {
        self.chunks.iter().enumerate().all(|(i, c)| {
            c.conn < self.conns && c.flags & !FLAGS == 0 && (c.flags & KEEP_OPEN == 0 || self.is_last_of_conn(i))
        })
    }
}

/// `request` as one connection kept open after it, until the server waits for more (as `curl`
/// and browsers keep theirs): a comux file of one `KEEP_OPEN` chunk.
pub fn kept_open(request: &[u8]) -> Vec<u8> {
    Comux { conns: 1, chunks: vec![Chunk { conn: 0, flags: KEEP_OPEN, data: request.to_vec() }] }.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::comux::{is_comux, AWAIT, BYTEWISE, RESET};

    fn two_conns() -> Comux {
        Comux {
            conns: 2,
            chunks: vec![
                Chunk { conn: 0, flags: 0, data: b"GET / HTTP/1.1\r\n".to_vec() },
                Chunk { conn: 1, flags: AWAIT, data: b"GET /a HTTP/1.0\r\n\r\n".to_vec() },
                Chunk { conn: 0, flags: KEEP_OPEN, data: b"Host: x\r\n\r\n".to_vec() },
            ],
        }
    }

    #[test]
    fn raw_bytes_are_one_plain_connection_and_stay_raw() {
        let raw = b"GET / HTTP/1.0\r\n\r\n";
        let c = Comux::from_bytes(raw);
        assert_eq!(c, Comux::raw(raw.to_vec()));
        assert!(c.is_raw());
        assert_eq!(c.to_bytes(), raw);
        assert_eq!(c.encoded_len(), raw.len());
    }

    #[test]
    fn one_connection_with_a_flag_or_the_magic_in_its_data_stays_comux() {
        let mut c = Comux::raw(b"GET /".to_vec());
        c.chunks[0].flags = BYTEWISE;
        let bytes = c.to_bytes();
        assert!(is_comux(&bytes));
        assert_eq!(Comux::from_bytes(&bytes), c);
        // Raw data that starts with the magic must not be read as a header.
        let c = Comux::raw(b"comux!!!and more".to_vec());
        let bytes = c.to_bytes();
        assert_eq!(bytes.len(), c.encoded_len());
        assert_eq!(Comux::from_bytes(&bytes), c);
    }

    #[test]
    fn round_trips_in_play_order_through_the_contract_parser() {
        let c = two_conns();
        let bytes = c.to_bytes();
        assert_eq!(bytes.len(), c.encoded_len());
        let parsed = contract::comux::parse(&bytes).unwrap();
        assert_eq!((parsed.num_conns, parsed.len()), (2, 3));
        assert!(parsed.is_last_of_conn(2) && !parsed.is_last_of_conn(0));
        assert_eq!(Comux::from_bytes(&bytes), c);
        assert!(c.is_consistent());
    }

    #[test]
    fn reads_chunks_in_sched_order_not_file_order() {
        let mut f = contract::comux::header(2, 3).to_vec();
        for (conn, sched, flags, data) in
            [(0u32, 7u32, RESET, &b"late"[..]), (1, 1, 0, b"first"), (0, 1, AWAIT, b"second")]
        {
            f.extend_from_slice(&contract::comux::chunk_header(conn, data.len() as u64, sched, flags));
            f.extend_from_slice(data);
        }
        let c = Comux::from_bytes(&f);
        let order: Vec<&[u8]> = c.chunks.iter().map(|c| c.data.as_slice()).collect();
        assert_eq!(order, [&b"first"[..], b"second", b"late"]);
        assert_eq!(c.chunks[2].flags, RESET);
        // Written back with sched = position: the same play order.
        let again = Comux::from_bytes(&c.to_bytes());
        assert_eq!(again, c);
    }

    #[test]
    fn the_built_in_multi_connection_seeds_are_canonical_and_whole() {
        let seeds: Vec<(String, Comux)> = crate::assets::seeds()
            .into_iter()
            .filter(|(_, bytes)| is_comux(bytes))
            .map(|(name, bytes)| {
                let comux = Comux::from_bytes(&bytes);
                assert_eq!(comux.to_bytes(), bytes, "{name}: not as this form writes it");
                assert!(comux.is_consistent(), "{name}");
                assert!((0..comux.conns).all(|c| comux.last_of(c).is_some()), "{name}: a connection never opens");
                (name, comux)
            })
            .collect();
        let get = |name: &str| &seeds.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1;
        for n in [2, 4, 8] {
            let c = get(&format!("conc_get_root_{n}.comux"));
            assert_eq!((c.conns, c.chunks.len()), (n, 2 * n as usize));
            // Every connection has started before any has sent all of its request.
            assert!(c.chunks[..n as usize].iter().enumerate().all(|(i, ch)| ch.conn == i as u32));
        }
        let flags = |name: &str| get(name).chunks.iter().map(|c| c.flags).collect::<Vec<_>>();
        assert_eq!(flags("sessions_two_clients.comux"), [AWAIT, AWAIT, AWAIT, 0]);
        assert_eq!(flags("sessions_shared_cookie.comux"), [AWAIT, AWAIT, AWAIT, 0]);
        assert_eq!(flags("bytewise_get_login.comux"), [BYTEWISE]);
        assert_eq!(flags("keep_open_get.comux"), [KEEP_OPEN]);
        assert_eq!(flags("stall_while_served.comux"), [KEEP_OPEN, 0]);
        assert!(get("early_disco_one_crlf.comux").data_of(0).ends_with(b"localhost\r\n"));
        assert!(!get("early_disco_no_crlf.comux").data_of(0).contains(&b'\n'));
        let uri = get("uri_80kb_then_get.comux").data_of(0);
        assert_eq!(uri.split(|&b| b == b' ').nth(1).unwrap().len(), 81920);
        assert_eq!(seeds.len(), 11);
    }

    #[test]
    fn removing_a_connection_renumbers_the_later_ones() {
        let mut c = two_conns();
        c.add_conn(vec![(0, b"x".to_vec())], &[0]);
        assert_eq!(c.conns, 3);
        assert_eq!(c.chunks[0].conn, 2);
        c.remove_conn(0);
        assert_eq!(c.conns, 2);
        let conns: Vec<u32> = c.chunks.iter().map(|c| c.conn).collect();
        assert_eq!(conns, [1, 0]);
        let parsed = Comux::from_bytes(&c.to_bytes());
        assert_eq!(parsed, c);
        assert_eq!(c.data_of(1), b"x");
    }

    #[test]
    fn compacting_renumbers_by_first_play_and_declares_only_those() {
        let chunk = |conn, data: &[u8]| Chunk { conn, flags: 0, data: data.to_vec() };
        let mut c = Comux { conns: 5, chunks: vec![chunk(4, b"a"), chunk(1, b"b"), chunk(4, b"c")] };
        c.compact();
        assert_eq!(c.conns, 2);
        assert_eq!(c.chunks.iter().map(|c| c.conn).collect::<Vec<_>>(), [0, 1, 0]);
        assert!(c.is_consistent());
    }

    #[test]
    fn a_kept_open_request_is_one_chunk_with_the_flag() {
        let file = kept_open(b"GET / HTTP/1.0\r\n\r\n");
        let parsed = contract::comux::parse(&file).unwrap();
        let chunks: Vec<_> = parsed.chunks().collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!((chunks[0].conn, chunks[0].flags, chunks[0].data), (0, KEEP_OPEN, &b"GET / HTTP/1.0\r\n\r\n"[..]));
    }
}
