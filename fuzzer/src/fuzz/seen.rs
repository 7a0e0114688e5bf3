//! The map entries earlier crashes (or hang candidates) reached, simplified to hit / not hit as
//! in AFL++'s virgin crash and timeout maps, and kept on disk: an instance that restarts, or a
//! `--resume`d campaign, does not save again what an earlier one saved.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub struct Seen {
    entries: Vec<bool>,
    /// Where the entries are kept (`fuzzK/.seen-crashes`, `fuzzK/.seen-hangs`); None: a copy
    /// kept in memory only (`mirror`).
    path: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    entries: Vec<bool>,
}

impl Seen {
    /// The entries saved at `path` by an earlier instance of this folder, else none.
    pub fn load(path: &Path) -> Self {
        let entries = std::fs::read(path)
            .ok()
            .and_then(|bytes| postcard::from_bytes::<OnDisk>(&bytes).ok())
            .map_or_else(Vec::new, |d| d.entries);
        Seen { entries, path: Some(path.to_path_buf()) }
    }

    /// The entries saved at `path`, to follow another `Seen` of that file in memory (fed the
    /// same maps, it says what the other will say) without writing the file.
    pub fn mirror(path: &Path) -> Self {
        Seen { path: None, ..Seen::load(path) }
    }

    /// Whether `map` reaches an entry no earlier map reached (without recording it).
    pub fn is_new(&self, map: &[u8]) -> bool {
        map.iter().enumerate().any(|(i, &m)| m != 0 && !self.entries.get(i).copied().unwrap_or(false))
    }

    /// True when `map` reaches an entry no earlier map reached; records them all (on disk too,
    /// which happens only when something is new: rarely).
    pub fn add(&mut self, map: &[u8]) -> bool {
        if self.entries.len() < map.len() {
            self.entries.resize(map.len(), false);
        }
        let mut new = false;
        for (s, _) in self.entries.iter_mut().zip(map).filter(|(_, &m)| m != 0) {
            new |= !*s;
            *s = true;
        }
        if new {
            self.store();
        }
        new
    }

    /// Written whole to a temporary file and renamed, so an instance stopped mid-write leaves the
    /// previous entries. A folder that cannot be written costs only this memory across restarts.
    fn store(&self) {
        let Some(path) = &self.path else { return };
        let Ok(bytes) = postcard::to_allocvec(&OnDisk { entries: self.entries.clone() }) else { return };
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_not_hit_before_are_new_and_they_survive_a_reload() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("seen-test");
        let mut seen = Seen::load(&path);
        assert!(seen.add(&[0, 1, 0, 0]));
        assert!(!seen.add(&[0, 4, 0, 0]), "another hit count of the same entry is not new");
        assert!(seen.add(&[1, 1, 0, 0]));
        let mut again = Seen::load(&path);
        assert!(!again.add(&[1, 128, 0, 0]));
        assert!(again.add(&[0, 0, 0, 2]));
    }
}
