//! Cutting the shortest file of each group down (delta debugging, one run per try) while its
//! run still fails the same way, within a budget of runs and time. A comux file loses whole
//! connections first, then whole chunks, then flags, then bytes within each chunk; it is
//! written as raw bytes once one chunk without flags is left.

use super::pool::on_all_cores;
use super::replay::Replayer;
use super::signature::Signature;
use super::Members;
use crate::comux::Comux;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Runs one minimization may take, at most, and how long.
const MINIMIZE_RUNS: usize = 100;
const MINIMIZE_TIME: Duration = Duration::from_secs(10);

impl Replayer<'_> {
    /// The shortest input of each group that fails (None for a flaky group).
    pub fn minimize_all(&self, groups: &[(Signature, Members)]) -> Vec<Option<Vec<u8>>> {
        on_all_cores(groups, "group(s) minimized", |(signature, members)| {
            let shortest = members.iter().map(|(f, _, _)| f).min_by_key(|f| f.bytes.len())?;
            let failed = members.iter().any(|(_, count, _)| *count > 0);
            failed.then(|| self.minimize(&shortest.bytes, signature))
        })
    }

    /// The shortest input found that still fails with `signature`.
    fn minimize(&self, input: &[u8], signature: &Signature) -> Vec<u8> {
        // A hang takes the whole run limit per try; a crash gdb placed is tried under gdb.
        let hang = signature.is_hang();
        let under_gdb = signature.is_signal() && !signature.frames.is_empty();
        let budget = if hang { MINIMIZE_RUNS / 20 } else { MINIMIZE_RUNS };
        let fails = |candidate: &[u8]| {
            // Under gdb only once a plain run crashed with the signal (a gdb run costs ~0.3 s).
            let failed = if under_gdb {
                self.signature_of(candidate, false)
                    .filter(|s| s.kind == signature.kind)
                    .and_then(|_| self.crash_under_gdb(candidate))
            } else {
                self.signature_of(candidate, hang)
            };
            failed.is_some_and(|s| s.key() == signature.key())
        };
        // Within triage's time, when it is bounded.
        let time = self
            .until
            .map_or(MINIMIZE_TIME, |until| until.saturating_duration_since(Instant::now()).min(MINIMIZE_TIME));
        minimized(input, &Budget::new(budget, time), fails)
    }
}

/// The tries and the time one minimization may take, shared by its steps.
struct Budget {
    runs: usize,
    time: Duration,
    started: Instant,
    tries: Cell<usize>,
    /// Each candidate run once: two steps often propose the same one (dropping a connection of
    /// one chunk, or that chunk).
    tried: RefCell<HashMap<Vec<u8>, bool>>,
}

impl Budget {
    fn new(runs: usize, time: Duration) -> Budget {
        Budget { runs, time, started: Instant::now(), tries: Cell::new(0), tried: RefCell::default() }
    }

    fn more(&self) -> bool {
        self.tries.get() < self.runs && self.started.elapsed() < self.time
    }

    /// `fails` on one candidate, counted; a candidate tried before is not run again.
    fn try_one(&self, candidate: &[u8], fails: impl Fn(&[u8]) -> bool) -> bool {
        if let Some(&failed) = self.tried.borrow().get(candidate) {
            return failed;
        }
        self.tries.set(self.tries.get() + 1);
        let failed = fails(candidate);
        self.tried.borrow_mut().insert(candidate.to_vec(), failed);
        failed
    }
}

/// The smallest input found for which `fails` holds: a comux file by [`smallest_case`], raw
/// bytes by [`shortest`].
fn minimized(input: &[u8], budget: &Budget, fails: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    if contract::comux::parse(input).is_some() {
        smallest_case(Comux::from_bytes(input), budget, fails).unwrap_or_else(|| input.to_vec())
    } else {
        shortest(input, budget, |candidate| budget.try_one(candidate, &fails))
    }
}

/// A comux file cut down: whole connections, then whole chunks, then single flags, then bytes
/// within each chunk (by [`shortest`]); every candidate written as it would be saved, so what
/// was tried is what is kept. None when nothing could be removed.
fn smallest_case(mut first: Comux, budget: &Budget, fails: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    // Compact, so that removing a connection (which keeps the numbering compact) or a chunk
    // (then compacted) gives the same bytes whichever step proposes it.
    first.compact();
    let mut best = first.clone();
    let fails_as = |candidate: &Comux| budget.try_one(&candidate.to_bytes(), &fails);
    let mut conn = 0;
    while conn < best.conns && best.conns > 1 && budget.more() {
        let mut candidate = best.clone();
        candidate.remove_conn(conn);
        if fails_as(&candidate) {
            best = candidate; // the later connections move down onto `conn`
        } else {
            conn += 1;
        }
    }
    let mut at = 0;
    while at < best.chunks.len() && best.chunks.len() > 1 && budget.more() {
        let mut candidate = best.clone();
        candidate.chunks.remove(at);
        candidate.compact();
        if fails_as(&candidate) {
            best = candidate;
        } else {
            at += 1;
        }
    }
    for at in 0..best.chunks.len() {
        let flags = best.chunks[at].flags;
        for bit in (0..32).map(|b| 1u32 << b).filter(|bit| flags & bit != 0) {
            if !budget.more() {
                break;
            }
            let mut candidate = best.clone();
            candidate.chunks[at].flags &= !bit;
            if fails_as(&candidate) {
                best = candidate;
            }
        }
    }
    for at in 0..best.chunks.len() {
        let with = |data: &[u8]| {
            let mut candidate = best.clone();
            candidate.chunks[at].data = data.to_vec();
            candidate
        };
        let data = shortest(&best.chunks[at].data, budget, |data| fails_as(&with(data)));
        best = with(&data);
    }
    (best != first).then(|| best.to_bytes())
}

/// The shortest input found for which `fails` holds, within `budget`: removing whole lines
/// first (the requests before the failing one, then single lines: headers), then chunks of
/// halving size. `fails` goes through [`Budget::try_one`] in the caller, which knows the whole
/// file a candidate is part of.
fn shortest(input: &[u8], budget: &Budget, fails: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let more = || budget.more();
    let mut best = input.to_vec();
    // The requests before the one that fails, all at once: the longest prefix of whole
    // lines without which it still fails (one line at a time, a request would not parse).
    let ends: Vec<usize> = best.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i + 1).collect();
    for &end in ends.iter().rev().filter(|&&end| end < best.len()) {
        if !more() {
            return best;
        }
        if fails(&best[end..]) {
            best.drain(..end);
            break;
        }
    }
    let mut at = 0;
    while let Some(end) = best[at..].iter().position(|&b| b == b'\n').map(|i| at + i + 1) {
        if !more() {
            return best;
        }
        let candidate = [&best[..at], &best[end..]].concat();
        if fails(&candidate) {
            best = candidate;
        } else {
            at = end;
        }
    }
    let mut chunk = best.len().div_ceil(2).max(1);
    while more() {
        let mut at = 0;
        let mut removed = false;
        while at < best.len() && more() {
            let candidate = [&best[..at], &best[(at + chunk).min(best.len())..]].concat();
            if fails(&candidate) {
                best = candidate;
                removed = true;
            } else {
                at += chunk;
            }
        }
        if !removed {
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comux::Chunk;
    use contract::comux::{AWAIT, BYTEWISE, RESET};

    fn budget(runs: usize) -> Budget {
        Budget::new(runs, MINIMIZE_TIME)
    }

    #[test]
    fn lines_then_bytes_are_cut_while_it_still_fails_within_the_budget() {
        let has_x = |c: &[u8]| c.contains(&b'X');
        assert_eq!(minimized(b"ab\ncX\nd", &budget(100), has_x), b"X");
        assert_eq!(minimized(b"ab\ncX\nd", &budget(0), has_x), b"ab\ncX\nd");
    }

    /// A comux file of `(conn, flags, data)` chunks, in play order.
    fn file(conns: u32, chunks: &[(u32, u32, &str)]) -> Vec<u8> {
        let chunks =
            chunks.iter().map(|&(conn, flags, data)| Chunk { conn, flags, data: data.as_bytes().to_vec() }).collect();
        Comux { conns, chunks }.to_bytes()
    }

    /// A candidate in short: `conn/flags:data` per chunk, or `raw:data`.
    fn show(bytes: &[u8]) -> String {
        if contract::comux::parse(bytes).is_none() {
            return format!("raw:{}", String::from_utf8_lossy(bytes));
        }
        let chunks: Vec<String> = Comux::from_bytes(bytes)
            .chunks
            .iter()
            .map(|c| format!("{}/{}:{}", c.conn, c.flags, String::from_utf8_lossy(&c.data)))
            .collect();
        chunks.join(" ")
    }

    #[test]
    fn comux_reductions_are_proposed_connections_then_chunks_then_flags_then_bytes() {
        let input = file(3, &[(2, AWAIT, "a\nb"), (0, 0, "c"), (2, RESET | BYTEWISE, "d")]);
        let tried = RefCell::new(Vec::new());
        let never = |c: &[u8]| {
            tried.borrow_mut().push(show(c));
            false
        };
        assert_eq!(minimized(&input, &budget(1000), never), input);
        let tried = tried.into_inner();
        // Connection 2 plays first: it is numbered 0.
        assert_eq!(
            tried,
            [
                // Without a whole connection.
                "raw:c",
                "0/1:a\nb 0/12:d",
                // Without a chunk (without the second is without connection 1: tried already).
                "0/0:c 1/12:d",
                "0/1:a\nb 1/0:c",
                // Without a flag.
                "0/0:a\nb 1/0:c 0/12:d",
                "0/1:a\nb 1/0:c 0/8:d",
                "0/1:a\nb 1/0:c 0/4:d",
                // Then bytes, chunk after chunk: the lines before the last, single lines (the
                // same), halves (the first the same), single bytes.
                "0/1:b 1/0:c 0/12:d",
                "0/1:a\n 1/0:c 0/12:d",
                "0/1:\nb 1/0:c 0/12:d",
                "0/1:ab 1/0:c 0/12:d",
                "0/1:a\nb 1/0: 0/12:d",
                "0/1:a\nb 1/0:c 0/12:",
            ]
        );
    }

    #[test]
    fn comux_keeps_what_the_failure_needs_and_is_raw_when_nothing_else_is_left() {
        let input = file(2, &[(0, 0, "GET /a\n"), (1, AWAIT | RESET, "ab\ncX\nd"), (1, 0, "zz")]);
        let x_then_reset =
            |c: &[u8]| Comux::from_bytes(c).chunks.iter().any(|c| c.data.contains(&b'X') && c.flags & RESET != 0);
        assert_eq!(show(&minimized(&input, &budget(1000), x_then_reset)), "0/8:X");
        let x = |c: &[u8]| c.contains(&b'X');
        assert_eq!(minimized(&input, &budget(1000), x), b"X");
        assert_eq!(minimized(&input, &budget(0), x), input, "no tries: the file as it was");
    }
}
