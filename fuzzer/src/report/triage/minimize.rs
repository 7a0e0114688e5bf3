//! Cutting the shortest file of each group down (delta debugging, one run per try) while its
//! run still fails the same way, within a budget of runs and time.

use super::pool::on_all_cores;
use super::replay::Replayer;
use super::signature::Signature;
use super::Members;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Runs one minimization may take, at most, and how long.
const MINIMIZE_RUNS: usize = 100;
const MINIMIZE_TIME: Duration = Duration::from_secs(10);

impl Replayer<'_> {
    /// The shortest input of each group that fails (None for a flaky group).
    pub fn minimize_all(&self, groups: &[(Signature, Members)]) -> Vec<Option<Vec<u8>>> {
        on_all_cores(groups, "group(s) minimized", |(signature, members)| {
            let shortest = members.iter().map(|(f, _)| f).min_by_key(|f| f.bytes.len())?;
            let failed = members.iter().any(|(_, count)| *count > 0);
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
        shortest(input, budget, MINIMIZE_TIME, fails)
    }
}

/// The shortest input found for which `fails` holds, in at most `budget` tries and about `time`:
/// removing whole lines first (the requests before the failing one, then single lines:
/// headers), then chunks of halving size.
fn shortest(input: &[u8], budget: usize, time: Duration, fails: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let started = Instant::now();
    let tries = Cell::new(0);
    let more = || tries.get() < budget && started.elapsed() < time;
    let fails = |candidate: &[u8]| {
        tries.set(tries.get() + 1);
        fails(candidate)
    };
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

    #[test]
    fn lines_then_bytes_are_cut_while_it_still_fails_within_the_budget() {
        let has_x = |c: &[u8]| c.contains(&b'X');
        assert_eq!(shortest(b"ab\ncX\nd", 100, MINIMIZE_TIME, has_x), b"X");
        assert_eq!(shortest(b"ab\ncX\nd", 0, MINIMIZE_TIME, has_x), b"ab\ncX\nd");
    }
}
