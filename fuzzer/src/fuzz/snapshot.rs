//! The campaign at one moment, as the broker shows it: a row per instance and their totals
//! (taken by `status`, drawn by `screen` or printed as a line).

/// One instance's row.
#[derive(Clone, Default)]
pub struct Row {
    /// Its folder (`fuzz0`, `fuzz0-asan`), as the instance reports it.
    pub name: String,
    pub execs: u64,
    pub speed: f64,
    pub corpus: u64,
    pub edges: u64,
    /// Crash files, leaks included.
    pub crashes: u64,
    pub hangs: u64,
    /// Leaks among the crash files: descriptor, memory.
    pub leaks: [u64; 2],
    /// Queue cycles done (AFL++'s `cycles_done`).
    pub cycles: u64,
    /// Percent of the map entries that every run of the same input reaches.
    pub stability: Option<f64>,
    /// Campaign time (seconds) of its last new queue entry, crash and hang.
    pub last_path: Option<u64>,
    pub last_crash: Option<u64>,
    pub last_hang: Option<u64>,
}

/// The whole campaign at one moment.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// Seconds since the campaign started.
    pub run_time: u64,
    pub instances: Vec<Row>,
}

impl Snapshot {
    pub fn execs(&self) -> u64 {
        self.instances.iter().map(|c| c.execs).sum()
    }
    pub fn speed(&self) -> f64 {
        self.instances.iter().map(|c| c.speed).sum()
    }
    pub fn corpus(&self) -> u64 {
        self.instances.iter().map(|c| c.corpus).sum()
    }
    /// The plain instances' best (the ASan build numbers its edges differently).
    pub fn edges(&self) -> u64 {
        self.instances.iter().map(|c| c.edges).max().unwrap_or(0)
    }
    pub fn crashes(&self) -> u64 {
        self.instances.iter().map(|c| c.crashes).sum()
    }
    pub fn hangs(&self) -> u64 {
        self.instances.iter().map(|c| c.hangs).sum()
    }
    /// Descriptor and memory leaks.
    pub fn leaks(&self) -> [u64; 2] {
        let sum = |i: usize| self.instances.iter().map(|c| c.leaks[i]).sum();
        [sum(0), sum(1)]
    }
    /// The leaks in words (`2 descriptor, 1 memory`), or `none`.
    pub fn leaks_text(&self) -> String {
        let [descriptor, memory] = self.leaks();
        let parts: Vec<String> = [(descriptor, "descriptor"), (memory, "memory")]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
    /// The fewest cycles any instance has done.
    pub fn cycles(&self) -> u64 {
        self.instances.iter().map(|c| c.cycles).min().unwrap_or(0)
    }
    pub fn stability(&self) -> Option<f64> {
        self.instances.iter().filter_map(|c| c.stability).reduce(f64::min)
    }
    pub fn last_path(&self) -> Option<u64> {
        self.instances.iter().filter_map(|c| c.last_path).max()
    }
    pub fn last_crash(&self) -> Option<u64> {
        self.instances.iter().filter_map(|c| c.last_crash).max()
    }
    pub fn last_hang(&self) -> Option<u64> {
        self.instances.iter().filter_map(|c| c.last_hang).max()
    }
}

/// `h:mm:ss`.
pub fn clock(secs: u64) -> String {
    format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_and_take_the_latest_times() {
        let row = |execs, crashes, last_crash| Row { execs, crashes, last_crash, speed: 10.0, ..Row::default() };
        let s = Snapshot { run_time: 60, instances: vec![row(5, 1, Some(3)), row(7, 2, Some(9)), row(1, 0, None)] };
        assert_eq!((s.execs(), s.crashes(), s.speed()), (13, 3, 30.0));
        assert_eq!(s.last_crash(), Some(9));
        assert_eq!(s.leaks_text(), "none");
        let leaky = |leaks| Row { leaks, ..Row::default() };
        let s = Snapshot { run_time: 1, instances: vec![leaky([1, 0]), leaky([1, 2])] };
        assert_eq!(s.leaks_text(), "2 descriptor, 2 memory");
        assert_eq!(s.last_hang(), None);
        assert_eq!(clock(3725), "1:02:05");
    }
}
