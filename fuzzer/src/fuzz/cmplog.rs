//! CmpLog / input-to-state, the way AFL++'s `-c` works, on LibAFL's stages.
//!
//! Each instance starts a second copy of the server under its own fork server, on its own port,
//! with the shared CmpLog map: there the runtime's `trace-cmp` callbacks and the preload's
//! `strcmp`/`memcmp` hooks log every comparison's operands into it (AFL++'s current layout,
//! read by `libafl_targets::AflppCmpLogObserver`). A binary built by AFL++ has AFL++'s runtime,
//! whose layout depends on its version (4.04c's is another), so only the preload logs there. Once per queue entry, colorization
//! finds the bytes that can change without changing the path, the tracer runs the entry and
//! its colorized copy, and `AflppRedQueen` writes the values the server compared against
//! (a method, a header name, a magic token) where the entry's bytes were compared.
//!
//! RedQueen overwrites in place, which text protocols defeat: a header name can only become a
//! longer one by eating the `:` after it, a number cannot gain digits. [`TextI2S`] adds the
//! resizing replacements: every compared string and decimal number found in the entry is
//! replaced by the value it was compared with.

use super::shmem::SelfRemovingShMemProvider;
use super::State;
use contract::env;
use libafl::corpus::Testcase;
use libafl::executors::forkserver::{ForkserverExecutor, ForkserverExecutorBuilder};
use libafl::inputs::BytesInput;
use libafl::mutators::MultiMutator;
use libafl::observers::cmp::{AflppCmpValuesMetadata, CmpValues};
use libafl::state::HasCurrentTestcase;
use libafl::Error;
use libafl::HasMetadata;
use libafl_bolts::ownedref::OwnedRefMut;
use libafl_bolts::shmem::{ShMem, ShMemProvider, UnixShMem};
use libafl_bolts::tuples::{tuple_list, Handled};
use libafl_bolts::{Named, StdTargetArgs, ToSlice};
use libafl_targets::{AflppCmpLogMap, AflppCmpLogObserver, AflppCmplogTracingStage, CMPLOG_RTN_LEN};
use std::borrow::Cow;
use std::collections::HashSet;

/// Entries longer than this are not traced: colorization costs up to two runs per byte.
const MAX_TRACED_LEN: usize = 4096;

/// The tracer: the second copy of the server, with the CmpLog observer.
type Tracer = ForkserverExecutor<BytesInput, (AflppCmpLogObserver<'static>, ()), State, UnixShMem>;
pub type TracingStage<EM, Z> = AflppCmplogTracingStage<'static, EM, Tracer, State, Z>;

/// The tracing stage over a fork server built from `server` (a copy of the server on its own
/// port), and the shared map it reads, which must be kept alive as long as the stage. The
/// binary's runtime gets the map too when `runtime_is_ours`.
pub fn tracing_stage<EM, Z>(
    server: ForkserverExecutorBuilder<'static, SelfRemovingShMemProvider>,
    runtime_is_ours: bool,
) -> Result<(TracingStage<EM, Z>, UnixShMem), Error> {
    let mut map = SelfRemovingShMemProvider::new()?.new_shmem(size_of::<AflppCmpLogMap>())?;
    let id = map.id().to_string();
    // SAFETY: the segment is zeroed by the kernel (a valid, empty map), at least as large as
    // an AflppCmpLogMap, page-aligned, and outlives the observer (the caller keeps `map`).
    let cmp_map = unsafe { OwnedRefMut::from_mut_ptr(map.as_mut_ptr().cast::<AflppCmpLogMap>()) };
    let observer = AflppCmpLogObserver::new("cmplog", cmp_map, true);
    let handle = observer.handle();
    let mut server = server.env(env::name(env::CMPLOG_SHM_ID), &id);
    if runtime_is_ours {
        server = server.env(env::name(env::AFL_CMPLOG_SHM_ID), &id);
    }
    let tracer = server.build(tuple_list!(observer))?;
    Ok((AflppCmplogTracingStage::new(tracer, handle), map))
}

/// Whether the current entry gets colorized and traced: once, the first time it is scheduled
/// (as AFL++ does), and only if it is short enough and one connection's raw bytes (colorizing
/// and RedQueen write anywhere in the file, a comux header too).
pub fn worth_tracing<E, EM, Z>(_: &mut Z, _: &mut E, state: &mut State, _: &mut EM) -> Result<bool, Error> {
    let testcase: std::cell::Ref<'_, Testcase<BytesInput>> = state.current_testcase()?;
    let bytes = testcase.input().as_ref().map(|input| input.as_ref().as_slice());
    let traceable = bytes.is_some_and(|b| b.len() <= MAX_TRACED_LEN && !contract::comux::is_comux(b));
    Ok(testcase.scheduled_count() == 0 && traceable)
}

/// Replacement inputs made per traced entry, at most.
const MAX_TEXT_CANDIDATES: usize = 512;
/// Occurrences of one operand replaced, at most.
const MAX_OCCURRENCES: usize = 8;

/// Input-to-state for text: the entry with a compared string or number replaced by the value
/// it was compared with, the input growing or shrinking as needed. Runs after the tracer, on
/// the operands of the entry's own comparisons.
pub struct TextI2S;

impl Named for TextI2S {
    fn name(&self) -> &Cow<'static, str> {
        static NAME: Cow<'static, str> = Cow::Borrowed("TextI2S");
        &NAME
    }
}

impl MultiMutator<BytesInput, State> for TextI2S {
    fn multi_mutate(
        &mut self,
        state: &mut State,
        input: &BytesInput,
        max: Option<usize>,
    ) -> Result<Vec<BytesInput>, Error> {
        let Ok(meta) = state.metadata::<AflppCmpValuesMetadata>() else { return Ok(Vec::new()) };
        let limit = max.unwrap_or(MAX_TEXT_CANDIDATES).min(MAX_TEXT_CANDIDATES);
        let values = meta.orig_cmpvals().values().flatten();
        Ok(text_replacements(input.as_ref(), values, limit).into_iter().map(BytesInput::new).collect())
    }
}

/// Inputs made from `input` by replacing one operand of a comparison by the other.
fn text_replacements<'a>(input: &[u8], values: impl Iterator<Item = &'a CmpValues>, limit: usize) -> Vec<Vec<u8>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for value in values {
        for (from, to, whole_number) in operand_pairs(value) {
            for at in occurrences(input, &from, whole_number).take(MAX_OCCURRENCES) {
                let candidate = [&input[..at], &to, &input[at + from.len()..]].concat();
                if out.len() < limit && seen.insert(candidate.clone()) {
                    out.push(candidate);
                }
            }
        }
    }
    out
}

/// `(text found in the input, its replacement, match whole numbers only)` for one comparison,
/// both ways round (which operand came from the input is not known).
fn operand_pairs(value: &CmpValues) -> Vec<(Vec<u8>, Vec<u8>, bool)> {
    let numbers = |a: u64, b: u64, bits: u32| -> Vec<(Vec<u8>, Vec<u8>, bool)> {
        let (a, b) = (decimal(a, bits), decimal(b, bits));
        let mut pairs = Vec::new();
        for (from, to) in [(a, b), (b, a)] {
            // One-digit numbers are everywhere in a request; replacing them is noise.
            if from != to && from.unsigned_abs() >= 10 {
                for to in [to, to.saturating_add(1), to.saturating_sub(1)] {
                    pairs.push((from.to_string().into_bytes(), to.to_string().into_bytes(), true));
                }
            }
        }
        pairs
    };
    match value {
        CmpValues::Bytes((a, b)) => match (c_string(a.to_slice()), c_string(b.to_slice())) {
            (Some(a), Some(b)) if a != b => {
                let mut pairs = Vec::new();
                for (from, to) in [(a, b), (b, a)] {
                    if !from.is_empty() {
                        pairs.push((from.to_vec(), to.to_vec(), false));
                    }
                }
                pairs
            }
            _ => Vec::new(),
        },
        CmpValues::U16((a, b, _)) => numbers((*a).into(), (*b).into(), 16),
        CmpValues::U32((a, b, _)) => numbers((*a).into(), (*b).into(), 32),
        CmpValues::U64((a, b, _)) => numbers(*a, *b, 64),
        _ => Vec::new(),
    }
}

/// A logged routine operand as the C string it was: up to its NUL, or all of it when shorter
/// than the logged maximum (a `memcmp`); None when it was cut off.
fn c_string(bytes: &[u8]) -> Option<&[u8]> {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => Some(&bytes[..end]),
        None => (bytes.len() < CMPLOG_RTN_LEN).then_some(bytes),
    }
}

/// An operand of `bits` bits as the number a program reads from text: negative when its sign
/// bit is set (`atoi` of "-5" compared as an int).
fn decimal(value: u64, bits: u32) -> i128 {
    let sign = 1u64 << (bits - 1);
    if value & sign != 0 {
        i128::from(value) - (1i128 << bits)
    } else {
        i128::from(value)
    }
}

/// Start offsets of `needle` in `haystack`; with `whole_number`, only where it is not part of
/// a longer number.
fn occurrences<'a>(haystack: &'a [u8], needle: &'a [u8], whole_number: bool) -> impl Iterator<Item = usize> + 'a {
    let digit = |i: Option<usize>| i.and_then(|i| haystack.get(i)).is_some_and(u8::is_ascii_digit);
    (0..=haystack.len().saturating_sub(needle.len()))
        .filter(move |&at| !needle.is_empty() && haystack[at..].starts_with(needle))
        .filter(move |&at| {
            !whole_number
                || !(digit(at.checked_sub(1)) || digit(Some(at + needle.len())) || at > 0 && haystack[at - 1] == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use libafl::observers::cmp::CmplogBytes;

    fn bytes(a: &[u8], b: &[u8]) -> CmpValues {
        let buf = |s: &[u8]| {
            let mut buf = [0; 32];
            buf[..s.len()].copy_from_slice(s);
            CmplogBytes::from_buf_and_len(buf, s.len() as u8)
        };
        CmpValues::Bytes((buf(a), buf(b)))
    }

    fn made(input: &[u8], values: &[CmpValues]) -> Vec<String> {
        text_replacements(input, values.iter(), 100).into_iter().map(|c| String::from_utf8(c).unwrap()).collect()
    }

    #[test]
    fn a_compared_header_name_is_replaced_whole_and_the_input_grows() {
        let made = made(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", &[bytes(b"Accept\0", b"X-Debug-Token\0")]);
        assert!(made.contains(&"GET / HTTP/1.1\r\nX-Debug-Token: */*\r\n\r\n".to_string()), "{made:?}");
    }

    #[test]
    fn both_operands_are_tried_and_every_occurrence() {
        let made = made(b"close close keep-alive", &[bytes(b"close\0", b"keep-alive\0")]);
        assert!(made.contains(&"keep-alive close keep-alive".to_string()));
        assert!(made.contains(&"close keep-alive keep-alive".to_string()));
        assert!(made.contains(&"close close close".to_string()));
        assert_eq!(made.len(), 3);
    }

    #[test]
    fn a_cut_off_operand_is_not_used() {
        let long = [b'a'; 32];
        assert!(made(&long, &[bytes(&long, b"b\0")]).is_empty());
        // A memcmp operand shorter than the log is complete without a NUL.
        assert_eq!(made(b"xMAGIy", &[bytes(b"MAGI", b"MAGIC")]), ["xMAGICy"]);
    }

    #[test]
    fn compared_numbers_are_replaced_as_decimal_text_with_neighbours() {
        let made = made(b"Content-Length: 45\r\nRange: bytes=145-45", &[CmpValues::U32((45, 4096, false))]);
        for want in ["4096", "4097", "4095"] {
            assert!(made.contains(&format!("Content-Length: {want}\r\nRange: bytes=145-45")), "{made:?}");
            // "145" is another number, and "-45" reads as negative: neither is touched.
            assert!(!made.iter().any(|m| m.contains(&format!("1{want}")) || m.ends_with(&format!("-{want}"))));
        }
        // The sign bit makes it negative, as atoi's result compared as an int.
        let made = super::tests::made(b"n=-100", &[CmpValues::U32(((-100i32) as u32, 7, false))]);
        assert!(made.contains(&"n=7".to_string()), "{made:?}");
    }

    #[test]
    fn one_digit_numbers_and_equal_operands_make_nothing() {
        assert!(made(b"a 5 b", &[CmpValues::U32((5, 6000, false))]).is_empty());
        assert!(made(b"GET", &[bytes(b"GET\0", b"GET\0")]).is_empty());
    }
}
