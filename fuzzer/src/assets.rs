//! Files shipped inside the `fuzzer` binary (from `seeds/`), so it works from any folder.

use anyhow::{Context, Result};
use include_dir::{include_dir, Dir};
use std::path::Path;

static ROOT: Dir = include_dir!("$CARGO_MANIFEST_DIR/../seeds/root");

/// The request of the start-up check: a plain static file every pserv serves.
pub const CHECK_REQUEST: &[u8] = b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n";

/// Write the sample web root (index.html, private/, a small .mp4, ...) into `dest`.
pub fn write_root(dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    ROOT.extract(dest).with_context(|| format!("cannot write the sample web root into {}", dest.display()))
}
