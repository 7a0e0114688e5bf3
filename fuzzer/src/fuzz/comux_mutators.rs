//! Mutators of multi-connection test cases (comux files, `crate::comux`). Inputs stay
//! `BytesInput`: each mutator reads the input into the editable form, changes it, and writes
//! it back, so the header always matches the chunks, and a test case of one plain connection
//! stays raw bytes.
//!
//! gurthang's: [`OnChunk`] runs a byte-level mutator stack (havoc, the HTTP mutators) on one
//! chunk's data; [`ChunkBump`], [`ChunkSplit`], [`ChunkSplice`] and [`DictSwap`]. Ours: add or
//! drop a connection, toggle one flag on a chunk, and cut a connection early ([`Disconnect`]).
//! Every mutator that changes an input names itself in `op:` (`names::note_op`).

use super::names::note_op;
use crate::comux::{Chunk, Comux};
use contract::comux::{AWAIT, BYTEWISE, KEEP_OPEN, RESET};
use libafl::corpus::Corpus;
use libafl::inputs::{BytesInput, HasMutatorBytes, ResizableMutator};
use libafl::mutators::{MutationResult, Mutator, Tokens};
use libafl::state::{HasCorpus, HasMaxSize, HasRand};
use libafl::{Error, HasMetadata};
use libafl_bolts::rands::Rand;
use libafl_bolts::tuples::tuple_list_type;
use libafl_bolts::Named;
use std::borrow::Cow;
use std::num::NonZeroUsize;

/// Connections a mutator may grow a test case to: the grading tests open eight at once, and
/// every connection makes each run longer (the format allows `contract::comux::MAX_CONNS`).
pub const MAX_FUZZ_CONNS: u32 = 16;
/// Chunks a mutator may grow a test case to (splits would otherwise pile up over generations).
pub const MAX_CHUNKS: usize = 128;
/// The longest chunk that may become byte-wise: each byte is its own `send` with a pause.
pub const BYTEWISE_MAX: usize = 1024;
/// Whole connections that [`ConnAdd`] may add: a request every server must answer.
const PLAIN_REQUESTS: &[&[u8]] = &[
    b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n",
    b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    b"GET /api/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
];

fn below<S: HasRand>(state: &mut S, n: usize) -> usize {
    state.rand_mut().below(NonZeroUsize::new(n.max(1)).unwrap())
}

fn pick<S: HasRand, T: Copy>(state: &mut S, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[below(state, items.len())])
}

/// Write `comux` into `input` unless it is longer than the state allows.
fn store<S: HasMaxSize>(state: &S, input: &mut BytesInput, comux: &Comux) -> MutationResult {
    if comux.encoded_len() > state.max_size() {
        return MutationResult::Skipped;
    }
    *input = BytesInput::new(comux.to_bytes());
    MutationResult::Mutated
}

/// Shared body of the structural mutators: read, let `edit` change the form, write back.
fn mutate_comux<S: HasMaxSize + HasMetadata>(
    state: &mut S,
    input: &mut BytesInput,
    op: &str,
    edit: impl FnOnce(&mut S, &mut Comux) -> bool,
) -> Result<MutationResult, Error> {
    let mut comux = Comux::from_bytes(input.mutator_bytes());
    if !edit(state, &mut comux) || store(state, input, &comux) == MutationResult::Skipped {
        return Ok(MutationResult::Skipped);
    }
    note_op(state, op);
    Ok(MutationResult::Mutated)
}

/// A byte-level mutator (a havoc stack, the HTTP mutators) applied to one chunk's data of a
/// comux input, or to the whole of a raw one. (LibAFL's `MappingMutator` hands out a part by
/// reference; a chunk is only a part once the file is parsed, and must be written back.)
#[derive(Debug)]
pub struct OnChunk<M> {
    inner: M,
    name: Cow<'static, str>,
}

impl<M: Named> OnChunk<M> {
    pub fn new(inner: M) -> Self {
        let name = Cow::Owned(format!("OnChunk<{}>", inner.name()));
        OnChunk { inner, name }
    }
}

impl<M> Named for OnChunk<M> {
    fn name(&self) -> &Cow<'static, str> {
        &self.name
    }
}

impl<M, S> Mutator<BytesInput, S> for OnChunk<M>
where
    M: Mutator<BytesInput, S>,
    S: HasRand + HasMaxSize,
{
    fn mutate(&mut self, state: &mut S, input: &mut BytesInput) -> Result<MutationResult, Error> {
        let mut comux = Comux::from_bytes(input.mutator_bytes());
        if comux.chunks.is_empty() {
            return Ok(MutationResult::Skipped);
        }
        let at = below(state, comux.chunks.len());
        let mut data = BytesInput::new(std::mem::take(&mut comux.chunks[at].data));
        if self.inner.mutate(state, &mut data)? == MutationResult::Skipped {
            return Ok(MutationResult::Skipped);
        }
        // Raw data that now starts with the magic (a spliced-in comux file) is written as one
        // connection's chunk, so it is still sent as it is.
        comux.chunks[at].data = data.into();
        Ok(store(state, input, &comux))
    }

    fn post_exec(&mut self, state: &mut S, id: Option<libafl::corpus::CorpusId>) -> Result<(), Error> {
        self.inner.post_exec(state, id)
    }
}

/// gurthang's dictionary swap: one dictionary word found in the data becomes another.
/// (LibAFL's `TokenReplace` writes a word over bytes at a random place; here a word replaces a
/// word, so `Content-Length: ` can become `Cookie: ` and the line still reads as a header.)
#[derive(Debug, Default)]
pub struct DictSwap;

/// Words looked for per round, at most (each search reads the whole data).
const DICT_SWAP_TRIES: usize = 16;

impl Named for DictSwap {
    fn name(&self) -> &Cow<'static, str> {
        static NAME: Cow<'static, str> = Cow::Borrowed("dict-swap");
        &NAME
    }
}

impl<S: HasRand + HasMetadata> Mutator<BytesInput, S> for DictSwap {
    fn mutate(&mut self, state: &mut S, input: &mut BytesInput) -> Result<MutationResult, Error> {
        let n = state.metadata::<Tokens>().map_or(0, Tokens::len);
        let len = input.mutator_bytes().len();
        if n < 2 || len == 0 {
            return Ok(MutationResult::Skipped);
        }
        for _ in 0..DICT_SWAP_TRIES {
            let (old, start) = (below(state, n), below(state, len));
            let word = state.metadata::<Tokens>()?.tokens()[old].clone();
            if word.is_empty() || word.len() > len {
                continue;
            }
            // The first occurrence from a random place on, wrapping around.
            let data = input.mutator_bytes();
            // memmem, not a compare per window: a long-field test case is 80 KiB.
            let found = |from: usize, to: usize| memchr::memmem::find(&data[from..to], &word).map(|p| p + from);
            let Some(at) = found(start, len).or_else(|| found(0, (start + word.len()).min(len))) else {
                continue;
            };
            let new = (old + 1 + below(state, n - 1)) % n;
            let replacement = state.metadata::<Tokens>()?.tokens()[new].clone();
            input.splice(at..at + word.len(), replacement).for_each(drop);
            note_op(state, "dict-swap");
            return Ok(MutationResult::Mutated);
        }
        Ok(MutationResult::Skipped)
    }

    fn post_exec(&mut self, _: &mut S, _: Option<libafl::corpus::CorpusId>) -> Result<(), Error> {
        Ok(())
    }
}

macro_rules! comux_mutator {
    ($(#[$doc:meta])* $name:ident, $op:literal, |$state:ident, $comux:ident| $body:block) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $name;

        impl Named for $name {
            fn name(&self) -> &Cow<'static, str> {
                static NAME: Cow<'static, str> = Cow::Borrowed($op);
                &NAME
            }
        }

        impl<S: HasRand + HasMaxSize + HasMetadata> Mutator<BytesInput, S> for $name {
            fn mutate(&mut self, state: &mut S, input: &mut BytesInput) -> Result<MutationResult, Error> {
                mutate_comux(state, input, $op, |$state, $comux| $body)
            }

            fn post_exec(&mut self, _: &mut S, _: Option<libafl::corpus::CorpusId>) -> Result<(), Error> {
                Ok(())
            }
        }
    };
}

comux_mutator!(
    /// gurthang's schedule bump: a chunk is played later, past chunks of other connections but
    /// never past its own connection's next chunk.
    ChunkBump, "chunk-bump", |state, comux| {
        let chunks = &comux.chunks;
        let movable: Vec<usize> = (0..chunks.len().saturating_sub(1)).filter(|&i| chunks[i + 1].conn != chunks[i].conn).collect();
        let Some(from) = pick(state, &movable) else { return false };
        let conn = chunks[from].conn;
        let next_own = (from + 1..chunks.len()).find(|&j| chunks[j].conn == conn).unwrap_or(chunks.len());
        // After removal, position `to` is just after the chunk that was at `to`.
        let to = from + 1 + below(state, next_own - from - 1);
        let chunk = comux.chunks.remove(from);
        comux.chunks.insert(to, chunk);
        true
    }
);

comux_mutator!(
    /// gurthang's split: a chunk becomes two, played one after the other; half the time the
    /// cut is just after a line end. The flags stay on the second half (they act after it),
    /// but BYTEWISE is kept on both.
    ChunkSplit, "chunk-split", |state, comux| {
        if comux.chunks.len() >= MAX_CHUNKS {
            return false;
        }
        let long: Vec<usize> = (0..comux.chunks.len()).filter(|&i| comux.chunks[i].data.len() >= 2).collect();
        let Some(at) = pick(state, &long) else { return false };
        let data = &comux.chunks[at].data;
        let line_ends: Vec<usize> = (1..data.len()).filter(|&i| data[i - 1] == b'\n').collect();
        let cut = match pick(state, &line_ends) {
            Some(cut) if below(state, 2) == 0 => cut,
            _ => 1 + below(state, data.len() - 1),
        };
        let second = comux.chunks[at].data.split_off(cut);
        let Chunk { conn, flags, .. } = comux.chunks[at];
        comux.chunks[at].flags = flags & BYTEWISE;
        comux.chunks.insert(at + 1, Chunk { conn, flags, data: second });
        true
    }
);

comux_mutator!(
    /// gurthang's splice: a chunk and its connection's next chunk become one, at the first's
    /// turn, with the second's flags (the inverse of a split).
    ChunkSplice, "chunk-splice", |state, comux| {
        let chunks = &comux.chunks;
        let pairs: Vec<(usize, usize)> = (0..chunks.len())
            .filter_map(|i| (i + 1..chunks.len()).find(|&j| chunks[j].conn == chunks[i].conn).map(|j| (i, j)))
            .collect();
        let Some((first, second)) = pick(state, &pairs) else { return false };
        let second = comux.chunks.remove(second);
        comux.chunks[first].data.extend_from_slice(&second.data);
        comux.chunks[first].flags = second.flags;
        true
    }
);

/// A new connection: a copy of one of the input's own, one from another queue entry, or a
/// plain request every server answers. Its chunks go to random turns (in their order), or
/// half the time after everything else (a later client that must still be served).
#[derive(Debug, Default)]
pub struct ConnAdd;

impl Named for ConnAdd {
    fn name(&self) -> &Cow<'static, str> {
        static NAME: Cow<'static, str> = Cow::Borrowed("conn-add");
        &NAME
    }
}

impl<S> Mutator<BytesInput, S> for ConnAdd
where
    S: HasRand + HasMaxSize + HasMetadata + HasCorpus<BytesInput>,
{
    fn mutate(&mut self, state: &mut S, input: &mut BytesInput) -> Result<MutationResult, Error> {
        let mut comux = Comux::from_bytes(input.mutator_bytes());
        if comux.conns >= MAX_FUZZ_CONNS {
            return Ok(MutationResult::Skipped);
        }
        let source = match below(state, 3) {
            0 => comux.clone(),
            1 => match state.corpus().count() {
                0 => comux.clone(),
                n => {
                    let nth = below(state, n);
                    let id = state.corpus().nth(nth);
                    let mut testcase = state.corpus().get(id)?.borrow_mut();
                    Comux::from_bytes(testcase.load_input(state.corpus())?.mutator_bytes())
                }
            },
            _ => Comux::raw(pick(state, PLAIN_REQUESTS).unwrap_or_default().to_vec()),
        };
        let opened: Vec<u32> = (0..source.conns).filter(|&c| source.last_of(c).is_some()).collect();
        let Some(conn) = pick(state, &opened) else { return Ok(MutationResult::Skipped) };
        let chunks: Vec<(u32, Vec<u8>)> =
            source.chunks_of(conn).map(|i| (source.chunks[i].flags, source.chunks[i].data.clone())).collect();
        if comux.chunks.len() + chunks.len() > MAX_CHUNKS {
            return Ok(MutationResult::Skipped);
        }
        let len = comux.chunks.len();
        let at: Vec<usize> = if below(state, 2) == 0 {
            (len..len + chunks.len()).collect()
        } else {
            let mut at = Vec::with_capacity(chunks.len());
            for k in 0..chunks.len() {
                let from = at.last().map_or(0, |&p| p + 1);
                at.push(from + below(state, len + k - from + 1));
            }
            at
        };
        comux.add_conn(chunks, &at);
        if store(state, input, &comux) == MutationResult::Skipped {
            return Ok(MutationResult::Skipped);
        }
        note_op(state, "conn-add");
        Ok(MutationResult::Mutated)
    }

    fn post_exec(&mut self, _: &mut S, _: Option<libafl::corpus::CorpusId>) -> Result<(), Error> {
        Ok(())
    }
}

comux_mutator!(
    /// Drop a connection and its chunks; the later connections' ids move down one.
    ConnDrop, "conn-drop", |state, comux| {
        if comux.conns < 2 {
            return false;
        }
        let conn = below(state, comux.conns as usize) as u32;
        comux.remove_conn(conn);
        true
    }
);

/// Toggle `flag` on one chunk that may carry it: KEEP_OPEN only on a connection's last chunk
/// (where it means something), BYTEWISE only on a short chunk (or off).
fn toggle<S: HasRand>(state: &mut S, comux: &mut Comux, flag: u32) -> bool {
    let fits = |i: usize| {
        let chunk = &comux.chunks[i];
        match flag {
            KEEP_OPEN => comux.is_last_of_conn(i),
            BYTEWISE => chunk.flags & BYTEWISE != 0 || chunk.data.len() <= BYTEWISE_MAX,
            _ => true,
        }
    };
    let fit: Vec<usize> = (0..comux.chunks.len()).filter(|&i| fits(i)).collect();
    let Some(at) = pick(state, &fit) else { return false };
    comux.chunks[at].flags ^= flag;
    true
}

comux_mutator!(
    /// Toggle AWAIT on a chunk: wait for the server to act on it before the next chunk.
    FlagAwait, "flag-await", |state, comux| { toggle(state, comux, AWAIT) }
);

comux_mutator!(
    /// Toggle KEEP_OPEN on a connection's last chunk: a client that keeps its side open.
    FlagKeepOpen, "flag-keep-open", |state, comux| { toggle(state, comux, KEEP_OPEN) }
);

comux_mutator!(
    /// Toggle BYTEWISE on a short chunk: one byte per `send`.
    FlagBytewise, "flag-bytewise", |state, comux| { toggle(state, comux, BYTEWISE) }
);

comux_mutator!(
    /// Toggle RESET on a chunk: an abortive close after it, the connection's later chunks unsent.
    FlagReset, "flag-reset", |state, comux| { toggle(state, comux, RESET) }
);

comux_mutator!(
    /// Early disconnect: a connection's data is cut (anywhere, or half the time just after a
    /// line end) and the connection ends there, closed (half-closed, or half the time reset).
    Disconnect, "disconnect", |state, comux| {
        let opened: Vec<u32> = (0..comux.conns).filter(|&c| !comux.data_of(c).is_empty()).collect();
        let Some(conn) = pick(state, &opened) else { return false };
        let data = comux.data_of(conn);
        let line_ends: Vec<usize> = (1..data.len()).filter(|&i| data[i - 1] == b'\n').collect();
        let cut = match pick(state, &line_ends) {
            Some(cut) if below(state, 2) == 0 => cut,
            _ => below(state, data.len()),
        };
        // Keep the chunks (or the part of one) before the cut; the first always, so that the
        // connection still opens.
        let own: Vec<usize> = comux.chunks_of(conn).collect();
        let (mut kept, mut last) = (0, own[0]);
        for &i in &own {
            if kept == cut && i != own[0] {
                break;
            }
            comux.chunks[i].data.truncate(cut - kept);
            kept += comux.chunks[i].data.len();
            last = i;
        }
        for &i in own.iter().rev().take_while(|&&i| i > last) {
            comux.chunks.remove(i);
        }
        let reset = if below(state, 2) == 0 { RESET } else { 0 };
        comux.chunks[last].flags = comux.chunks[last].flags & !(KEEP_OPEN | RESET) | reset;
        true
    }
);

/// The multi-connection mutators, for their own stage (`comux_share`).
pub type ComuxMutations = tuple_list_type!(
    ConnAdd,
    ConnDrop,
    ChunkBump,
    ChunkSplit,
    ChunkSplice,
    FlagAwait,
    FlagKeepOpen,
    FlagBytewise,
    FlagReset,
    Disconnect
);

pub fn comux_mutations() -> ComuxMutations {
    ComuxMutations::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::findings::CurrentOp;
    use crate::fuzz::http::Conversation;
    use crate::fuzz::mutators::{http_mutations, LongField, LONG_LENGTHS};
    use crate::fuzz::names::OpsNamed;
    use libafl::corpus::{InMemoryCorpus, Testcase};
    use libafl::mutators::HavocScheduledMutator;
    use libafl::state::StdState;
    use libafl_bolts::rands::StdRand;

    type TestState = StdState<InMemoryCorpus<BytesInput>, BytesInput, StdRand, InMemoryCorpus<BytesInput>>;

    const LOGIN: &[u8] = b"POST /api/login HTTP/1.1\r\nHost: localhost\r\nCookie: theme=dark; auth_token=abc\r\nContent-Length: 45\r\n\r\n{\"username\":\"user0\",\"password\":\"thepassword\"}";

    fn state() -> TestState {
        let mut state =
            StdState::new(StdRand::with_seed(7), InMemoryCorpus::new(), InMemoryCorpus::new(), &mut (), &mut ())
                .unwrap();
        state.corpus_mut().add(Testcase::new(BytesInput::new(b"GET /from-corpus HTTP/1.0\r\n\r\n".to_vec()))).unwrap();
        state
    }

    /// Connection 0 in two chunks around connection 1's one (which waits for its reply).
    fn two_conns() -> Comux {
        Comux {
            conns: 2,
            chunks: vec![
                Chunk { conn: 0, flags: 0, data: b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec() },
                Chunk { conn: 1, flags: AWAIT, data: LOGIN.to_vec() },
                Chunk { conn: 0, flags: 0, data: b"Connection: close\r\n\r\n".to_vec() },
            ],
        }
    }

    /// Each input `mutator` changed, out of `runs` tries on `start`, read back; every one must
    /// be a file every reader reads the same (written back byte-exact) and well formed.
    fn outputs<M: Mutator<BytesInput, TestState>>(mut mutator: M, start: &Comux, runs: usize) -> Vec<Comux> {
        let mut state = state();
        let mut all = Vec::new();
        for _ in 0..runs {
            let mut input = BytesInput::new(start.to_bytes());
            if mutator.mutate(&mut state, &mut input).unwrap() == MutationResult::Mutated {
                let bytes = input.mutator_bytes();
                let comux = Comux::from_bytes(bytes);
                assert_eq!(comux.to_bytes(), bytes, "not written canonically");
                assert!(comux.is_consistent(), "{comux:?}");
                if let Some(file) = contract::comux::parse(bytes) {
                    assert_eq!((file.num_conns, file.len()), (comux.conns, comux.chunks.len()));
                }
                all.push(comux);
            }
        }
        assert!(!all.is_empty(), "never mutated");
        all
    }

    /// Each connection's chunks (flags, data) in play order.
    fn per_conn(comux: &Comux) -> Vec<Vec<(u32, Vec<u8>)>> {
        (0..comux.conns)
            .map(|c| comux.chunks_of(c).map(|i| (comux.chunks[i].flags, comux.chunks[i].data.clone())).collect())
            .collect()
    }

    #[test]
    fn bump_reorders_connections_but_keeps_each_ones_order() {
        let start = two_conns();
        let all = outputs(ChunkBump, &start, 200);
        for out in &all {
            assert_eq!(per_conn(out), per_conn(&start));
            assert_ne!(out.chunks, start.chunks);
        }
        // The only move: connection 0's first chunk after connection 1's.
        assert_eq!(all[0].chunks.iter().map(|c| c.conn).collect::<Vec<_>>(), [1, 0, 0]);
    }

    #[test]
    fn split_and_splice_keep_each_connections_bytes() {
        let start = two_conns();
        let data = |c: &Comux| (0..c.conns).map(|conn| c.data_of(conn)).collect::<Vec<_>>();
        let splits = outputs(ChunkSplit, &start, 300);
        for out in &splits {
            assert_eq!(data(out), data(&start));
            assert_eq!(out.chunks.len(), 4);
        }
        // Some cut right after a line end; the AWAIT stays on the second half.
        assert!(splits
            .iter()
            .any(|o| o.chunks.iter().any(|c| c.data.ends_with(b"\r\n") && c.data.starts_with(b"POST"))));
        assert!(splits.iter().all(|o| o.chunks.iter().filter(|c| c.flags == AWAIT).count() == 1));
        for out in outputs(ChunkSplice, &start, 50) {
            assert_eq!(data(&out), data(&start));
            assert_eq!(out.chunks.len(), 2);
        }
        // A raw input (one chunk) has nothing to splice.
        let mut input = BytesInput::new(LOGIN.to_vec());
        assert_eq!(ChunkSplice.mutate(&mut state(), &mut input).unwrap(), MutationResult::Skipped);
    }

    #[test]
    fn each_toggle_changes_exactly_its_flag_on_one_allowed_chunk() {
        let start = two_conns();
        let toggled = [
            (AWAIT, outputs(FlagAwait, &start, 100)),
            (KEEP_OPEN, outputs(FlagKeepOpen, &start, 100)),
            (BYTEWISE, outputs(FlagBytewise, &start, 100)),
            (RESET, outputs(FlagReset, &start, 100)),
        ];
        for (flag, all) in toggled {
            for out in all {
                let changed: Vec<usize> = (0..3).filter(|&i| out.chunks[i] != start.chunks[i]).collect();
                assert_eq!(changed.len(), 1, "{out:?}");
                let (old, new) = (&start.chunks[changed[0]], &out.chunks[changed[0]]);
                assert_eq!(old.flags ^ new.flags, flag);
                assert_eq!((old.conn, &old.data), (new.conn, &new.data));
                if flag == KEEP_OPEN {
                    assert!(out.is_last_of_conn(changed[0]));
                }
            }
        }
        // A flag on a raw input makes it a one-connection comux file.
        let mut input = BytesInput::new(LOGIN.to_vec());
        FlagReset.mutate(&mut state(), &mut input).unwrap();
        assert_eq!(
            Comux::from_bytes(input.mutator_bytes()).chunks[0],
            Chunk { conn: 0, flags: RESET, data: LOGIN.to_vec() }
        );
        // No byte-wise chunk of 80 KiB.
        let long = Comux::raw(vec![b'a'; BYTEWISE_MAX + 1]);
        let mut input = BytesInput::new(long.to_bytes());
        assert_eq!(FlagBytewise.mutate(&mut state(), &mut input).unwrap(), MutationResult::Skipped);
    }

    #[test]
    fn drop_removes_a_connection_and_renumbers_the_rest() {
        let mut start = two_conns();
        start.add_conn(vec![(KEEP_OPEN, b"GET /third HTTP/1.1\r\n\r\n".to_vec())], &[1]);
        let all = outputs(ConnDrop, &start, 100);
        for out in &all {
            assert_eq!(out.conns, 2);
            assert!((0..2).all(|c| out.last_of(c).is_some()), "ids 0..2 in use: {out:?}");
            let mut left = per_conn(out);
            let mut expected = per_conn(&start);
            expected.retain(|c| left.contains(c));
            assert_eq!(expected.len(), 2);
            left.sort();
            expected.sort();
            assert_eq!(left, expected);
        }
        // Down to one plain connection: raw bytes again.
        let mut input = BytesInput::new(
            Comux { conns: 2, chunks: vec![Chunk { conn: 1, flags: 0, data: LOGIN.to_vec() }] }.to_bytes(),
        );
        let mut state = state();
        while ConnDrop.mutate(&mut state, &mut input).unwrap() == MutationResult::Mutated
            && contract::comux::is_comux(input.mutator_bytes())
        {
            input = BytesInput::new(
                Comux { conns: 2, chunks: vec![Chunk { conn: 1, flags: 0, data: LOGIN.to_vec() }] }.to_bytes(),
            );
        }
        assert_eq!(input.mutator_bytes(), LOGIN);
    }

    #[test]
    fn add_copies_a_connection_from_the_input_the_corpus_or_a_plain_request() {
        let start = two_conns();
        let all = outputs(ConnAdd, &start, 300);
        let mut sources = std::collections::HashSet::new();
        for out in &all {
            assert_eq!(out.conns, 3);
            assert_eq!(per_conn(out)[..2], per_conn(&start)[..], "the others are untouched");
            let new = out.data_of(2);
            let source = if new == start.data_of(0) || new == start.data_of(1) {
                "own"
            } else if new.starts_with(b"GET /from-corpus") {
                "corpus"
            } else {
                assert!(PLAIN_REQUESTS.contains(&new.as_slice()), "{:?}", String::from_utf8_lossy(&new));
                "plain"
            };
            sources.insert(source);
        }
        assert_eq!(sources.len(), 3, "{sources:?}");
        assert!(all.iter().any(|o| o.chunks.last().unwrap().conn == 2 && o.chunks[0].conn != 2));
        assert!(all.iter().any(|o| o.chunks[0].conn == 2), "never interleaved in front");
    }

    #[test]
    fn disconnect_cuts_one_connection_early_with_or_without_reset() {
        let start = two_conns();
        let all = outputs(Disconnect, &start, 400);
        let (mut after_crlf, mut reset, mut closed) = (false, false, false);
        for out in &all {
            let cut: Vec<u32> = (0..2).filter(|&c| out.data_of(c) != start.data_of(c)).collect();
            assert_eq!(cut.len(), 1);
            let (old, new) = (start.data_of(cut[0]), out.data_of(cut[0]));
            assert!(new.len() < old.len() && old.starts_with(&new));
            let last = &out.chunks[out.last_of(cut[0]).unwrap()];
            assert_eq!(last.flags & KEEP_OPEN, 0);
            after_crlf |= new.ends_with(b"\r\n");
            reset |= last.flags & RESET != 0;
            closed |= last.flags & RESET == 0;
        }
        assert!(after_crlf && reset && closed);
        // A raw input cut without RESET stays raw: a prefix of the request.
        let raws: Vec<Comux> = outputs(Disconnect, &Comux::raw(LOGIN.to_vec()), 100);
        assert!(raws.iter().any(|o| o.is_raw() && LOGIN.starts_with(&o.chunks[0].data)));
    }

    #[test]
    fn http_mutators_on_a_comux_input_change_one_chunks_data_only() {
        let start = two_conns();
        let stack = OnChunk::new(HavocScheduledMutator::with_max_stack_pow(http_mutations(), 2));
        let all = outputs(stack, &start, 300);
        for out in &all {
            assert_eq!(out.conns, start.conns);
            assert_eq!(out.chunks.len(), 3);
            let changed = (0..3).filter(|&i| out.chunks[i].data != start.chunks[i].data).count();
            assert!(changed <= 1);
            assert!((0..3)
                .all(|i| (out.chunks[i].conn, out.chunks[i].flags) == (start.chunks[i].conn, start.chunks[i].flags)));
        }
        assert!(all.iter().filter(|o| o.chunks != start.chunks).count() > all.len() / 2);
        // On a raw input they act on the bytes, which stay raw.
        for out in outputs(OnChunk::new(HavocScheduledMutator::new(http_mutations())), &Comux::raw(LOGIN.to_vec()), 100)
        {
            assert!(out.is_raw());
        }
    }

    /// The lengths of the four fields LongField grows in `bytes`' first request.
    fn field_lengths(bytes: &[u8]) -> [usize; 4] {
        let conv = Conversation::parse(bytes).unwrap();
        let r = &conv.requests[0];
        let cookie = r.header("Cookie").unwrap_or_default();
        let longest_cookie = cookie
            .split(|&b| b == b';')
            .map(|p| p.iter().position(|&b| b == b'=').map_or(0, |e| p.len() - e - 1))
            .max();
        let longest_value =
            r.headers.iter().filter(|(n, _)| n != b"Cookie").map(|(_, v)| v.len().saturating_sub(2)).max();
        // The body as sent (a grown Content-Length value is no number: the parser sees none).
        let head = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        [r.line[1].len(), longest_value.unwrap_or(0), longest_cookie.unwrap_or(0), bytes.len() - head]
    }

    #[test]
    fn long_fields_reach_each_boundary_and_a_raw_input_stays_raw() {
        let before = field_lengths(LOGIN);
        let mut reached = vec![[false; 4]; LONG_LENGTHS.len()];
        for out in outputs(OnChunk::new(LongField), &Comux::raw(LOGIN.to_vec()), 3000) {
            assert!(out.is_raw());
            let bytes = out.to_bytes();
            let after = field_lengths(&bytes);
            let grown: Vec<usize> = (0..4).filter(|&f| after[f] != before[f]).collect();
            assert_eq!(grown.len(), 1, "one field grows: {before:?} -> {after:?}");
            let i = LONG_LENGTHS
                .iter()
                .position(|&l| l == after[grown[0]])
                .unwrap_or_else(|| panic!("{before:?} -> {after:?}"));
            reached[i][grown[0]] = true;
            if grown[0] == 3 {
                let r = &Conversation::parse(&bytes).unwrap().requests[0];
                assert_eq!(r.header("Content-Length").unwrap(), r.body.len().to_string().as_bytes());
            }
        }
        for (length, fields) in LONG_LENGTHS.iter().zip(&reached) {
            assert!(fields.iter().all(|&f| f), "{length}: target, header, cookie, body = {fields:?}");
        }
        // In a comux input: one chunk grows, and the file stays whole.
        for out in outputs(OnChunk::new(LongField), &two_conns(), 100) {
            let changed = (0..3).filter(|&i| out.chunks[i].data != two_conns().chunks[i].data).count();
            assert_eq!(changed, 1);
        }
    }

    #[test]
    fn nothing_longer_than_the_max_size_is_made() {
        let mut state = state();
        state.set_max_size(two_conns().encoded_len() + 10);
        let mut input = BytesInput::new(two_conns().to_bytes());
        for _ in 0..50 {
            assert_eq!(ConnAdd.mutate(&mut state, &mut input).unwrap(), MutationResult::Skipped);
        }
        assert_eq!(input.mutator_bytes(), two_conns().to_bytes());
    }

    #[test]
    fn dict_swap_replaces_a_word_by_another() {
        let mut state = state();
        let words: Vec<Vec<u8>> =
            [&b"Content-Length: "[..], b"Cookie: ", b"/api/logout"].iter().map(|w| w.to_vec()).collect();
        state.add_metadata(Tokens::from(words));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut input = BytesInput::new(LOGIN.to_vec());
            if DictSwap.mutate(&mut state, &mut input).unwrap() == MutationResult::Mutated {
                seen.insert(String::from_utf8_lossy(input.mutator_bytes()).into_owned());
            }
        }
        let text = String::from_utf8_lossy(LOGIN);
        assert!(seen.contains(&text.replace("Content-Length: ", "Cookie: ")));
        assert!(seen.contains(&text.replace("Content-Length: ", "/api/logout")));
        assert!(seen.contains(&text.replacen("Cookie: ", "Content-Length: ", 1)));
    }

    #[test]
    fn entries_are_named_after_the_mutators_that_made_them() {
        let mut state = state();
        state.add_metadata(CurrentOp::new("comux"));
        let mut stack = OpsNamed(HavocScheduledMutator::with_max_stack_pow(comux_mutations(), 1));
        let mut names = std::collections::HashSet::new();
        for _ in 0..300 {
            let mut input = BytesInput::new(two_conns().to_bytes());
            let result = stack.mutate(&mut state, &mut input).unwrap();
            let op = state.metadata::<CurrentOp>().unwrap();
            assert_eq!(op.mutators.is_empty(), result == MutationResult::Skipped, "{op:?}");
            assert!(op.mutators.len() <= 2);
            names.extend(op.mutators.iter().cloned());
            if op.mutators.len() == 1 {
                assert_eq!(op.name(), format!("comux+{}", op.mutators[0]));
            }
        }
        let all = ["conn-add", "conn-drop", "chunk-bump", "chunk-split", "chunk-splice", "flag-await"];
        let all = all.into_iter().chain(["flag-keep-open", "flag-bytewise", "flag-reset", "disconnect"]);
        assert_eq!(names, all.map(String::from).collect());
    }
}
