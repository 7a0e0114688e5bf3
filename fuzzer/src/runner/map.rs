//! One run of the instrumented server with a coverage map: the run the start-up check makes,
//! and `fuzzer showmap`'s.

use super::target::Target;
use super::{Finished, Limits};
use anyhow::{Context, Result};
use contract::env;
use libafl_bolts::shmem::{ShMem, ShMemProvider, UnixShMemProvider};
use std::path::Path;
use std::time::Duration;

use contract::MAP_SIZE;

/// Run `target` on `port` once on `input` under the preload with a fresh coverage map; returns the
/// covered entries with AFL-bucketed hit counts.
pub fn run_with_map(target: &Target, root: &Path, input: &[u8], port: u16) -> Result<(Finished, Vec<(usize, u8)>)> {
    let mut provider = UnixShMemProvider::new().context("cannot create shared memory")?;
    let shmem = provider.new_shmem(MAP_SIZE).context("cannot create the coverage map (shared memory)")?;
    let id = shmem.id().to_string();
    let root = root.canonicalize().with_context(|| format!("the web root {} is missing", root.display()))?;
    let command = target.command(port, &root);
    let limits = Limits {
        listen: Duration::from_secs(5),
        run: Duration::from_secs(5),
        mem_mb: target.mem_limit_mb,
        stacks: None,
    };
    let mut envs = vec![(env::name(env::AFL_SHM_ID), id.as_ref())];
    if target.serves_root() {
        envs.push((env::name(env::ROOT), root.as_os_str()));
    }
    let finished = super::run(&command, &envs, target.cwd.as_deref(), Some(input), limits, true)?;
    let map = shmem.iter().enumerate().filter(|(_, &c)| c != 0).map(|(i, &c)| (i, bucket(c))).collect();
    Ok((finished, map))
}

/// AFL's hit-count classes: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+.
fn bucket(count: u8) -> u8 {
    match count {
        0..=3 => count,
        4..=7 => 4,
        8..=15 => 8,
        16..=31 => 16,
        32..=127 => 32,
        _ => 128,
    }
}
