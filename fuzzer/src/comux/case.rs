//! A test case in an owned, editable form: its connections' chunks, read through
//! [`contract::comux::parse`] (so it means what every other reader takes it to mean) and written
//! back with the contract's headers. Raw bytes are one connection's single chunk.

use contract::comux;

/// One chunk: what to send on which connection, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub conn: u32,
    pub sched: u32,
    pub flags: u32,
    pub data: Vec<u8>,
}

/// A test case: `num_conns` connections and the chunks sent on them, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    pub num_conns: u32,
    pub chunks: Vec<Chunk>,
}

impl Case {
    /// Reads a comux file leniently (as [`comux::parse`] does); other bytes are one connection's.
    pub fn from_bytes(bytes: &[u8]) -> Case {
        match comux::parse(bytes) {
            Some(file) => Case {
                num_conns: file.num_conns,
                chunks: file
                    .chunks()
                    .map(|c| Chunk { conn: c.conn, sched: c.sched, flags: c.flags, data: c.data.to_vec() })
                    .collect(),
            },
            None => Case { num_conns: 1, chunks: vec![Chunk { conn: 0, sched: 0, flags: 0, data: bytes.to_vec() }] },
        }
    }

    /// Whether it says no more than raw bytes would: one chunk without flags, whose data
    /// would not be read back as a comux file.
    pub fn is_raw(&self) -> bool {
        matches!(&self.chunks[..], [c] if c.flags == 0 && !comux::is_comux(&c.data))
    }

    /// The file: raw bytes when [`Case::is_raw`], else comux.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.is_raw() {
            return self.chunks[0].data.clone();
        }
        let mut out = comux::header(self.num_conns, self.chunks.len() as u32).to_vec();
        for c in &self.chunks {
            out.extend_from_slice(&comux::chunk_header(c.conn, c.data.len() as u64, c.sched, c.flags));
            out.extend_from_slice(&c.data);
        }
        out
    }

    /// The connections some chunk is sent on, ascending.
    pub fn conns(&self) -> Vec<u32> {
        let mut conns: Vec<u32> = self.chunks.iter().map(|c| c.conn).collect();
        conns.sort_unstable();
        conns.dedup();
        conns
    }

    /// Connections renumbered 0.. in the order of their first chunk in the file, and as many
    /// declared: after chunks were removed, no connection is declared that nothing is sent on.
    pub fn compacted(mut self) -> Case {
        let mut order: Vec<u32> = Vec::new();
        for c in &mut self.chunks {
            let id = match order.iter().position(|&o| o == c.conn) {
                Some(id) => id,
                None => {
                    order.push(c.conn);
                    order.len() - 1
                }
            };
            c.conn = id as u32;
        }
        self.num_conns = (order.len() as u32).max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(conn: u32, sched: u32, flags: u32, data: &[u8]) -> Chunk {
        Chunk { conn, sched, flags, data: data.to_vec() }
    }

    #[test]
    fn raw_bytes_are_one_chunk_and_written_back_as_they_were() {
        let case = Case::from_bytes(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(case, Case { num_conns: 1, chunks: vec![chunk(0, 0, 0, b"GET / HTTP/1.0\r\n\r\n")] });
        assert_eq!(case.to_bytes(), b"GET / HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn comux_round_trips_through_the_contract() {
        let case = Case {
            num_conns: 2,
            chunks: vec![chunk(1, 3, comux::AWAIT, b"GET /a"), chunk(0, 1, comux::KEEP_OPEN | comux::RESET, b"")],
        };
        let bytes = case.to_bytes();
        assert!(comux::is_comux(&bytes));
        let parsed = comux::parse(&bytes).unwrap();
        assert_eq!(parsed.schedule().collect::<Vec<_>>(), [1, 0]);
        assert_eq!(Case::from_bytes(&bytes), case);
    }

    #[test]
    fn one_chunk_is_raw_only_without_flags_and_without_the_magic() {
        let flagged = Case { num_conns: 1, chunks: vec![chunk(0, 0, comux::BYTEWISE, b"GET /")] };
        assert!(comux::is_comux(&flagged.to_bytes()));
        // Raw data starting with the magic would be read back as a comux file.
        let magic = Case { num_conns: 1, chunks: vec![chunk(0, 0, 0, b"comux!!!...")] };
        assert_eq!(Case::from_bytes(&magic.to_bytes()), magic);
        // The connection's number does not matter to one chunk.
        let third = Case { num_conns: 3, chunks: vec![chunk(2, 7, 0, b"GET /")] };
        assert_eq!(third.to_bytes(), b"GET /");
    }

    #[test]
    fn compacting_renumbers_by_first_appearance() {
        let case =
            Case { num_conns: 5, chunks: vec![chunk(4, 0, 0, b"a"), chunk(1, 1, 0, b"b"), chunk(4, 2, 0, b"c")] };
        let compact = case.compacted();
        assert_eq!(compact.num_conns, 2);
        assert_eq!(compact.chunks.iter().map(|c| c.conn).collect::<Vec<_>>(), [0, 1, 0]);
        assert_eq!(compact.conns(), [0, 1]);
    }
}
