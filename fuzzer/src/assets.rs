//! Files shipped inside the `fuzzer` binary (from `seeds/`), so it works from any folder.

use anyhow::{Context, Result};
use include_dir::{include_dir, Dir};
use std::path::Path;

static ROOT: Dir = include_dir!("$CARGO_MANIFEST_DIR/../seeds/root");
static SEEDS: Dir = include_dir!("$CARGO_MANIFEST_DIR/../seeds/requests");

/// The built-in HTTP dictionary (AFL `-x` format).
pub const DICTIONARY: &str = include_str!("../../seeds/http.dict");

/// The request of the start-up check: a plain static file every pserv serves.
pub const CHECK_REQUEST: &[u8] = b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n";

/// Write the sample web root (index.html, private/, a small .mp4, ...) into `dest`.
pub fn write_root(dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    ROOT.extract(dest).with_context(|| format!("cannot write the sample web root into {}", dest.display()))
}

/// The built-in seed requests, sorted by name.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<_> = SEEDS
        .files()
        .map(|f| (f.path().file_name().unwrap_or_default().to_string_lossy().into_owned(), f.contents().to_vec()))
        .collect();
    seeds.sort();
    seeds
}

/// Seeds from a folder: every regular file, sorted by name.
pub fn seeds_from(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("cannot read the seed folder {}", dir.display()))?;
    let mut seeds = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read the seed {}", path.display()))?;
            if !bytes.is_empty() {
                seeds.push((entry.file_name().to_string_lossy().into_owned(), bytes));
            }
        }
    }
    if seeds.is_empty() {
        anyhow::bail!(
            "the seed folder {} has no (non-empty) files: put at least one raw HTTP request in it",
            dir.display()
        );
    }
    seeds.sort();
    Ok(seeds)
}
