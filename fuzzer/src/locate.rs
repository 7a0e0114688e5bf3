//! The fuzzer's companion files (fuzzer-cc, libsockfuzz.so, the runtime archive) live next to
//! its own executable: the cargo target folder, or where `scripts/install` put them.

use anyhow::{bail, Result};
use std::path::PathBuf;

/// A program installed next to our own executable.
pub fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.is_file() {
        bail!("{} is missing: build the whole workspace with `cargo build --release --workspace`", path.display());
    }
    Ok(path)
}
