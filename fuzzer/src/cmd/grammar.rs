//! `fuzzer grammar -o DIR`: write seeds generated from the HTTP grammar into a folder.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::fuzz::grammar;

#[derive(clap::Args)]
pub struct Args {
    /// Nautilus JSON grammar (default: the built-in one).
    #[arg(long, value_name = "FILE")]
    grammar: Option<PathBuf>,
    /// How many seeds.
    #[arg(short = 'n', long, default_value_t = 50)]
    count: usize,
    /// Folder to write them into.
    #[arg(short = 'o', long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let seeds = grammar::seeds(args.grammar.as_deref(), args.count)?;
    for (name, bytes) in &seeds {
        std::fs::write(out.join(name), bytes).with_context(|| format!("cannot write into {}", out.display()))?;
    }
    println!("[grammar] wrote {} seeds into {}", seeds.len(), out.display());
    Ok(ExitCode::SUCCESS)
}
