//! The server under test: its binary, the argument template that starts it, the folder it runs
//! in and the memory it may use.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Arguments of a pserv: `{port}` and `{root}` are filled in per run.
pub const DEFAULT_ARGS: &str = "-p {port} -R {root}";

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub binary: PathBuf,
    /// Whitespace-separated arguments with `{port}` / `{root}` placeholders.
    pub args: String,
    /// The working directory it runs in (`None`: the fuzzer's own).
    pub cwd: Option<PathBuf>,
    /// The memory it may use, in MB (0: no limit).
    pub mem_limit_mb: u64,
}

impl Target {
    pub fn new(binary: PathBuf, args: Option<&str>) -> Self {
        Target {
            binary,
            args: args.unwrap_or(DEFAULT_ARGS).to_string(),
            cwd: None,
            mem_limit_mb: super::preload::DEFAULT_MEM_LIMIT_MB,
        }
    }

    /// The same server, with `mb` megabytes of memory (0: no limit).
    pub fn with_mem_limit(self, mb: u64) -> Self {
        Target { mem_limit_mb: mb, ..self }
    }

    /// The same server, run in `cwd`.
    pub fn in_dir(self, cwd: Option<PathBuf>) -> Self {
        Target { cwd, ..self }
    }

    /// Whether the server is told its web root (`{root}`): only then can the path-traversal
    /// oracle tell a file outside it.
    pub fn serves_root(&self) -> bool {
        self.args.contains("{root}")
    }

    /// The full command line for a server on `port` serving `root`.
    pub fn command(&self, port: u16, root: &Path) -> Vec<OsString> {
        let root = root.to_string_lossy();
        let args = self
            .args
            .split_whitespace()
            .map(|a| OsString::from(a.replace("{port}", &port.to_string()).replace("{root}", &root)));
        std::iter::once(self.binary.clone().into_os_string()).chain(args).collect()
    }
}
