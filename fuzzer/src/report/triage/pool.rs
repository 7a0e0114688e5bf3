//! Triage's work on every core: one scoped thread per core takes the next item by an atomic
//! index, and a line every few seconds says how far it got. Replays and minimizations run
//! servers and mostly wait on them, so they are spread out item by item, not in fixed chunks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a progress line is printed, at most.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// `work` on each item, on as many threads as there are cores (no more than items); the results
/// in the order of the items. `what` names the items done in the progress lines
/// (`[triage] 3/10 file(s) replayed`). An item whose thread panicked gets `R::default()`.
pub fn on_all_cores<T: Sync, R: Send + Default>(
    items: &[T],
    what: &'static str,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let progress = Progress::new(items.len(), what);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len());
    let next = AtomicUsize::new(0);
    let done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break mine };
                        let _tick = progress.tick();
                        mine.push((i, work(item)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    let mut results: Vec<R> = std::iter::repeat_with(R::default).take(items.len()).collect();
    for (i, r) in done {
        results[i] = r;
    }
    results
}

/// How many of how many items are done, and when the last line about it was printed.
struct Progress {
    total: usize,
    what: &'static str,
    done: AtomicUsize,
    last: Mutex<Instant>,
}

/// Counts one item as done when dropped (also when its work panicked).
struct Tick<'a>(&'a Progress);

impl Progress {
    fn new(total: usize, what: &'static str) -> Self {
        Progress { total, what, done: 0.into(), last: Mutex::new(Instant::now()) }
    }

    fn tick(&self) -> Tick<'_> {
        Tick(self)
    }
}

impl Drop for Tick<'_> {
    fn drop(&mut self) {
        let p = self.0;
        let done = p.done.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = p.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= PROGRESS_EVERY && done < p.total {
            *last = Instant::now();
            println!("[triage] {done}/{} {}", p.total, p.what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_order_of_the_items() {
        let items: Vec<usize> = (0..50).collect();
        let squares = on_all_cores(&items, "item(s) squared", |&i| {
            std::thread::sleep(Duration::from_millis((i % 3) as u64));
            i * i
        });
        assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        assert!(on_all_cores(&[] as &[u8], "none", |_| 1).is_empty());
    }
}
