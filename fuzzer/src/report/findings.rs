//! The crash and hang files of a campaign (`OUT/*/crashes`, `OUT/*/hangs`), as the summary
//! counts them and triage replays them.
//!
//! Here rather than in either of them so that neither imports the other for it.

use std::path::{Path, PathBuf};

/// Files of `dir` that are findings (AFL++ puts a README.txt next to them), in no set order.
pub fn names_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.txt" && !n.starts_with('.'))
        .collect()
}

/// A crash or hang file.
pub struct Finding {
    /// Relative to OUT.
    pub name: String,
    pub bytes: Vec<u8>,
    pub hang: bool,
}

/// Every crash and hang file of every instance folder under OUT, read, in the order of their
/// paths (an instance's crashes before its hangs).
pub fn read_all(out: &Path) -> Vec<Finding> {
    let mut found = Vec::new();
    let Ok(instances) = std::fs::read_dir(out) else { return found };
    let mut instances: Vec<PathBuf> = instances.flatten().map(|e| e.path()).collect();
    instances.sort();
    for instance in instances {
        for (sub, hang) in [("crashes", false), ("hangs", true)] {
            let dir = instance.join(sub);
            let mut names = names_in(&dir);
            names.sort();
            for path in names.into_iter().map(|name| dir.join(name)) {
                if let Ok(bytes) = std::fs::read(&path) {
                    let name = path.strip_prefix(out).unwrap_or(&path).display().to_string();
                    found.push(Finding { name, bytes, hang });
                }
            }
        }
    }
    found
}
