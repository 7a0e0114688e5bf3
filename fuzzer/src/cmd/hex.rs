//! `fuzzer hex FILE`: hex dump with offsets and an ASCII column (colours on a terminal); a comux
//! file chunk by chunk.
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The file to dump (e.g. a crash file).
    file: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let path = &args.file;
    let bytes = std::fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
    let color = io::stdout().is_terminal();
    io::stdout().lock().write_all(crate::hex::dump_test_case(&bytes, color).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
