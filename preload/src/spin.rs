//! The spin verdict: a server thread in a loop that never ends, told from slow work without
//! waiting for the timeout.
//!
//! The fuzzer gives a bound derived from its seeds' run times (control page,
//! [`contract::control::SPIN_US`]; 0 or no page: off). Once a run has lasted half of it, the
//! client thread looks, every quarter of it, at each thread of the processes that serve the
//! test case (`/proc`): the CPU time it ran (`schedstat`), its voluntary context switches
//! (`status`: a system call that blocks makes one), its read and write system calls (`io`) and
//! its page faults (`stat`), and at the coverage map's entries that were reached (the
//! fuzzer's map, `__AFL_SHM_ID`). A thread that, over the whole bound, ran at least a quarter
//! of the time and never blocked, read, wrote or faulted in a page, while no new map entry was
//! reached and no byte of the test case's connections moved (a `send` is no `write` for `io`),
//! spins: the run ends with [`EXIT_SPIN`](contract::verdicts::EXIT_SPIN). Work that is slow but
//! real reads, writes, sends, waits, touches new memory or reaches new code; a thread that does
//! not get the CPU (a loaded machine) is not judged. The fuzzer re-runs a new spin once by the
//! same rule before it saves it as a hang.

use crate::log::debug;
use crate::settle;
use crate::state::{control, control_u32};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What one look saw.
struct Sample {
    at: Instant,
    /// Non-zero entries of the coverage map, and bytes the client sent and received: progress.
    reached: usize,
    moved: u64,
    threads: Vec<Thread>,
}

/// One server thread, as `/proc` shows it.
struct Thread {
    tid: libc::pid_t,
    running: bool,
    /// Nanoseconds on the CPU (`schedstat`).
    cpu_ns: u64,
    /// Voluntary context switches, read and write system calls, page faults: any change is
    /// work that is not a spin.
    activity: [u64; 4],
}

/// The spin watch of one run.
pub struct Watch {
    bound: Duration,
    start: Instant,
    next: Instant,
    /// The looks of the last bound, oldest first (cleared when a new map entry is reached).
    samples: VecDeque<Sample>,
}

impl Watch {
    /// The watch of a run starting now, if the fuzzer asked for one and the map is at hand.
    pub fn new() -> Option<Watch> {
        let us = control_u32(contract::control::SPIN_US);
        if us == 0 || map().is_none() {
            return None;
        }
        let bound = Duration::from_micros(u64::from(us));
        let start = Instant::now();
        Some(Watch { bound, start, next: start + bound / 2, samples: VecDeque::with_capacity(8) })
    }

    /// Milliseconds until the next look is due (at least 1: a poll timeout).
    pub fn due_in(&self) -> i32 {
        self.next.saturating_duration_since(Instant::now()).as_millis().clamp(1, 1000) as i32
    }

    /// Look, if a look is due, at the threads of `processes` (pids; "self" besides, but the
    /// calling thread), `moved` the bytes the client has sent and received so far: true when
    /// one of the threads spins.
    pub fn spins(&mut self, processes: impl Iterator<Item = libc::pid_t>, moved: u64) -> bool {
        let now = Instant::now();
        if now < self.next || control(contract::control::PATIENT) != 0 {
            return false;
        }
        self.next = now + (self.bound / 4).max(Duration::from_micros(500));
        // SAFETY: gettid has no preconditions.
        let me = unsafe { libc::gettid() };
        let mut threads = Vec::new();
        read_threads("self", me, &mut threads);
        for pid in processes {
            read_threads(&pid.to_string(), me, &mut threads);
        }
        let sample = Sample { at: now, reached: reached(), moved, threads };
        if self.samples.back().is_some_and(|last| (last.reached, last.moved) != (sample.reached, sample.moved)) {
            self.samples.clear(); // new code, or bytes to or from the server: whatever ran made progress
        }
        // The newest look at least a bound old is the one to compare with.
        while self.samples.len() > 1 && now.duration_since(self.samples[1].at) >= self.bound {
            self.samples.pop_front();
        }
        let spinner = self
            .samples
            .front()
            .filter(|old| now.duration_since(old.at) >= self.bound)
            .and_then(|old| spinning(old, &sample));
        self.samples.push_back(sample);
        if let Some(tid) = spinner {
            debug!(
                "thread {tid} ran {} ms without a blocking call, a read or write, a page fault, new coverage or bytes on the connections: spin",
                now.duration_since(self.start).as_millis()
            );
        }
        spinner.is_some()
    }
}

/// A thread in both looks that ran at least a quarter of the time between them and did nothing
/// else (an ASan client shares its core with the plain one, at a lower priority).
fn spinning(old: &Sample, new: &Sample) -> Option<libc::pid_t> {
    let span = new.at.duration_since(old.at).as_nanos() as u64;
    new.threads.iter().find_map(|t| {
        let before = old.threads.iter().find(|o| o.tid == t.tid)?;
        (t.running && t.cpu_ns.saturating_sub(before.cpu_ns) >= span / 4 && t.activity == before.activity)
            .then_some(t.tid)
    })
}

/// The threads of `process` (a pid or "self") but `me`.
fn read_threads(process: &str, me: libc::pid_t, out: &mut Vec<Thread>) {
    for (tid, dir) in settle::other_threads(process, me) {
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let stat = read("stat");
        // "tid (comm) S ppid ...": comm may hold spaces and parentheses; minflt is the 10th
        // field, majflt the 12th.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        let field = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        let status = read("status");
        let io = read("io");
        let named = |text: &str, key: &str| {
            text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0)
        };
        out.push(Thread {
            tid,
            running: fields.first() == Some(&"R"),
            cpu_ns: read("schedstat").split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0),
            activity: [
                named(&status, "voluntary_ctxt_switches:"),
                named(&io, "syscr:"),
                named(&io, "syscw:"),
                field(10) + field(12),
            ],
        });
    }
}

/// The coverage map (the fuzzer's segment, attached once per process), if there is one.
fn map() -> Option<&'static [u64]> {
    static MAP: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    let (at, len) = (*MAP.get_or_init(|| {
        contract::sysv::attach(contract::env::AFL_SHM_ID).ok().map(|(map, len)| (map as usize, len / 8))
    }))?;
    // SAFETY: an attached segment of at least `len` words, page-aligned, never detached; the
    // server writes it meanwhile, which only makes a count one look early or late.
    Some(unsafe { std::slice::from_raw_parts(at as *const u64, len) })
}

/// Non-zero entries of the coverage map.
fn reached() -> usize {
    map().map_or(0, |words| {
        words
            .iter()
            // SAFETY: a word of the attached map (see `map`).
            .map(|w| unsafe { std::ptr::read_volatile(w) })
            .filter(|&w| w != 0)
            .map(|w| (0..8).filter(|i| (w >> (8 * i)) & 0xff != 0).count())
            .sum()
    })
}
