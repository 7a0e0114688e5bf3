//! Memory-leak oracle (ASan builds, through `lsan`): heap memory that nothing points to any more,
//! allocated while the server handled the test case, ends the run by [`SIG_MEM_LEAK`] after
//! LeakSanitizer's report (on the server's stderr, or ASan's `log_path`).
//!
//! Checked in the run's process once the test case ended normally and the server waits again
//! (`settle`): after each test case of a persistent server, at the end of a fork server's run.
//! The start-up is not counted (`lsan` hides it), nor our own allocations.
//!
//! The check stops the world and scans the heap: 1.0-1.5 ms in a small server with 5 threads
//! and 1,000 live blocks, 2.4-7.5 ms the first time in a process (as in every fork-mode run),
//! 9.4 ms (median) with 65,000 live blocks (gcc 12 and clang 14, measured): as long as a run,
//! or longer. So it is made only when the heap grew over the test case (ASan's count of
//! allocated bytes, read in a fraction of a microsecond), and then only while the checks have
//! taken at most a tenth of the time the test cases took (plus [`ALLOWANCE`] for the first
//! ones), summed over every run of the fork server on a page mapped before it starts. A server
//! whose heap grows on every request (a cache) thus pays at most 10% more: in a 30 s campaign
//! on one that keeps every request's cookie, 45 checks ran (374 ms in all) and 473 were left
//! out. The control page's
//! [`CONFIRM`](contract::control::CONFIRM) byte, set for the fuzzer's fresh re-run of what a
//! reused process found, makes the check whatever the budget says.
//!
//! In persistent mode a test case whose heap grew unchecked may have leaked, and LeakSanitizer
//! reports every leak there is: a later check that finds one cannot tell whose it is. It is not
//! reported then, and the process ends after that test case (`client`), so that the next one
//! starts clean.

use crate::log::{self, debug};
use crate::page::{Page, ZeroIsValid};
use crate::state::{config, control};
use crate::{end, finding, lsan, settle};
use contract::verdicts::SIG_MEM_LEAK;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

/// Checks may take this share of the test cases' time...
const SHARE: u64 = 10;
/// ... plus this much, so that the first test cases (of `fuzzer run`, of triage) are checked.
const ALLOWANCE: Duration = Duration::from_millis(50);

/// The heap as a test case began.
pub struct Mark {
    bytes: usize,
    at: Instant,
}

/// Whether the oracle is on: an ASan build, and not `SOCKFUZZ_LEAKS=0`.
pub fn on() -> bool {
    config().leaks && lsan::allocated_bytes().is_some()
}

/// The heap now, if the oracle is on. Taken once the server waits for the test case: what its
/// start-up allocates or frees meanwhile would count as the test case's (`persist::begin`).
pub fn mark() -> Option<Mark> {
    on().then(|| Mark { bytes: lsan::allocated_bytes().unwrap_or(0), at: Instant::now() })
}

/// A test case of this process grew the heap and went unchecked since the last check: a leak
/// found now may be its.
static UNCHECKED: AtomicBool = AtomicBool::new(false);

/// What the heap holds now was not checked: a replay of the test case ran after its check
/// (`descriptor_leaks`).
pub fn unchecked() {
    UNCHECKED.store(true, SeqCst);
}

/// After the test case begun at `mark` ended normally: dies by [`SIG_MEM_LEAK`] on a leak of
/// its own. False on a leak that may be an earlier test case's: this process must not serve
/// another.
pub fn check(mark: Option<Mark>) -> bool {
    let Some(mark) = mark else { return true };
    let budget = budget();
    budget.runs_ns.fetch_add(mark.at.elapsed().as_nanos() as u64, SeqCst);
    let grown = || lsan::allocated_bytes().filter(|&b| b > mark.bytes);
    let Some(bytes) = grown() else { return true };
    if control(contract::control::CONFIRM) == 0 && !budget.allows() {
        debug!("the heap grew by {} bytes; no leak check (over its time budget)", bytes - mark.bytes);
        UNCHECKED.store(true, SeqCst);
        return true;
    }
    settle::until_asleep();
    let Some(bytes) = grown() else { return true };
    let start = Instant::now();
    let leaked = lsan::leaks_now();
    budget.checks_ns.fetch_add(start.elapsed().as_nanos() as u64, SeqCst);
    debug!("the heap grew by {} bytes; leak check in {} us", bytes - mark.bytes, start.elapsed().as_micros());
    if leaked && UNCHECKED.load(SeqCst) {
        debug!("a leak, maybe of an earlier test case that went unchecked: this process ends");
        return false;
    }
    if leaked {
        found(bytes - mark.bytes);
    }
    UNCHECKED.store(false, SeqCst);
    true
}

/// Reports the leak (stderr, after LeakSanitizer's report, and `SOCKFUZZ_FINDING_FILE`) and dies
/// by [`SIG_MEM_LEAK`].
fn found(grown: usize) -> ! {
    log::error(format_args!(
        "memory leak: LeakSanitizer found memory that nothing points to any more, allocated while the server \
         handled the test case (its report is above; the heap grew by {grown} bytes)"
    ));
    if let Some(mut file) = finding::Writer::create() {
        file.put(format!("the heap grew by {grown} bytes\n").as_bytes());
    }
    end::die_by(SIG_MEM_LEAK)
}

/// The time the test cases and the checks took, over every run of the fork server.
#[repr(C)]
struct Budget {
    runs_ns: AtomicU64,
    checks_ns: AtomicU64,
}

impl Budget {
    fn allows(&self) -> bool {
        let (runs, checks) = (self.runs_ns.load(SeqCst), self.checks_ns.load(SeqCst));
        checks <= runs / SHARE + ALLOWANCE.as_nanos() as u64
    }
}

/// Used until `init` has mapped the page (and if it cannot).
static BUDGET: Page<Budget> = Page::new(Budget { runs_ns: AtomicU64::new(0), checks_ns: AtomicU64::new(0) });

// SAFETY: atomics only.
unsafe impl ZeroIsValid for Budget {}

fn budget() -> &'static Budget {
    BUDGET.get()
}

/// Map the budget's page, shared by every run the fork server forks (called before it starts).
pub fn init() {
    BUDGET.map();
}
