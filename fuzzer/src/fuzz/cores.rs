//! Which cores the instances run on: the ones asked for, among those this process may use (its
//! CPU affinity: `taskset`, a cgroup CPU set, a batch scheduler's allocation). Unless named
//! with `--cores`, free ones first: as AFL++ does, a core is busy when a process is pinned to
//! it alone (another fuzzer's instance, an afl-fuzz), so two students on one machine do not
//! share a core while others idle.

use anyhow::{anyhow, bail, Result};
use libafl_bolts::core_affinity::Cores;
use std::collections::BTreeMap;

/// The cores for `--cores SPEC` or `-j N` (N cores, free ones first); without either, one
/// free core. Says which cores it passed over as busy, and when it must share a busy one.
pub fn choose(spec: Option<&str>, first_n: Option<usize>) -> Result<Cores> {
    let busy = if spec.is_some() { BTreeMap::new() } else { pinned_processes() };
    let cores = pick(spec, first_n, &allowed(), machine(), &busy)?;
    let passed: Vec<String> = busy
        .iter()
        .filter(|(core, _)| !cores.ids.iter().any(|c| c.0 == **core))
        .map(|(core, who)| format!("{core} ({who})"))
        .collect();
    let shared: Vec<String> =
        cores.ids.iter().filter_map(|c| busy.get(&c.0).map(|who| format!("{} ({who})", c.0))).collect();
    if !passed.is_empty() {
        println!("[cores] passed over busy core(s): {}", passed.join(", "));
    }
    if !shared.is_empty() {
        println!(
            "[cores] no free core left: sharing busy core(s) {}, which runs slower (fewer cores with -j, or --cores)",
            shared.join(", ")
        );
    }
    Ok(cores)
}

/// Busy cores: those a process other than us is pinned to alone, with the process that holds
/// each (`name pid`, comma-separated). Kernel threads (no `VmSize`) do not count.
fn pinned_processes() -> BTreeMap<usize, String> {
    let me = std::process::id().to_string();
    let mut busy = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return busy };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
        if field("VmSize:").is_none() {
            continue;
        }
        if let Some(Ok(core)) = field("Cpus_allowed_list:").map(str::parse::<usize>) {
            let who = format!("{} {pid}", field("Name:").unwrap_or("?"));
            busy.entry(core).and_modify(|all: &mut String| *all += &format!(", {who}")).or_insert(who);
        }
    }
    busy
}

fn pick(
    spec: Option<&str>,
    first_n: Option<usize>,
    allowed: &[usize],
    machine: usize,
    busy: &BTreeMap<usize, String>,
) -> Result<Cores> {
    // Free cores first, then busy ones (shared, as a last resort).
    let mut by_load = allowed.to_vec();
    by_load.sort_by_key(|c| busy.contains_key(c));
    let list = |cores: &[usize]| cores.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let ids: Vec<usize> = match (spec, first_n) {
        (_, Some(0)) => bail!("-j needs at least 1 core"),
        (_, Some(n)) if n > allowed.len() => bail!(
            "-j {n}: this process may run on {} core(s) only ({}; its CPU affinity, as set by taskset or a \
             cgroup CPU set): ask for at most {}",
            allowed.len(),
            list(allowed),
            allowed.len()
        ),
        (_, Some(n)) => by_load[..n].to_vec(),
        (Some("all"), None) => allowed.to_vec(),
        (Some(spec), None) => {
            let cores = Cores::from_cmdline(spec).map_err(|e| anyhow!("--cores {spec}: {e}"))?;
            let ids: Vec<usize> = cores.ids.iter().map(|c| c.0).collect();
            if let Some(core) = ids.iter().find(|&&c| c >= machine) {
                bail!(
                    "--cores {spec}: core {core} does not exist, this machine has {machine} core(s) (0-{})",
                    machine - 1
                );
            }
            if let Some(core) = ids.iter().find(|c| !allowed.contains(c)) {
                bail!(
                    "--cores {spec}: this process may not run on core {core}, only on {} (its CPU affinity, as set \
                     by taskset or a cgroup CPU set): choose among those",
                    list(allowed)
                );
            }
            ids
        }
        (None, None) => by_load[..1].to_vec(),
    };
    Ok(Cores::from(ids))
}

/// The cores in this process's affinity mask (all of the machine's if it cannot be read).
fn allowed() -> Vec<usize> {
    match libafl_bolts::core_affinity::get_core_ids() {
        Ok(ids) if !ids.is_empty() => ids.into_iter().map(|id| id.0).collect(),
        _ => (0..machine()).collect(),
    }
}

/// The machine's cores (online CPUs), whatever this process may use.
fn machine() -> usize {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).unwrap_or(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(cores: Result<Cores>) -> Vec<usize> {
        cores.unwrap().ids.iter().map(|c| c.0).collect()
    }

    #[test]
    fn cores_are_chosen_among_the_allowed_ones() {
        // As under `taskset -c 1,3` on a 4-core machine.
        let allowed = [1, 3];
        let none = BTreeMap::new();
        assert_eq!(ids(pick(None, None, &allowed, 4, &none)), [1]);
        assert_eq!(ids(pick(None, Some(2), &allowed, 4, &none)), [1, 3]);
        assert_eq!(ids(pick(Some("all"), None, &allowed, 4, &none)), [1, 3]);
        assert_eq!(ids(pick(Some("3"), None, &allowed, 4, &none)), [3]);
        let err = pick(Some("0-1"), None, &allowed, 4, &none).unwrap_err().to_string();
        assert!(err.contains("may not run on core 0, only on 1,3"), "{err}");
        let err = pick(None, Some(3), &allowed, 4, &none).unwrap_err().to_string();
        assert!(err.contains("may run on 2 core(s) only (1,3"), "{err}");
        let err = pick(Some("7"), None, &allowed, 4, &none).unwrap_err().to_string();
        assert!(err.contains("core 7 does not exist, this machine has 4 core(s) (0-3)"), "{err}");
    }

    #[test]
    fn free_cores_come_first() {
        let busy = BTreeMap::from([(0, "fuzzer 41".to_string()), (2, "afl-fuzz 42".to_string())]);
        let allowed = [0, 1, 2, 3];
        assert_eq!(ids(pick(None, None, &allowed, 4, &busy)), [1]);
        assert_eq!(ids(pick(None, Some(3), &allowed, 4, &busy)), [1, 3, 0]);
        // All busy: the first is shared.
        assert_eq!(ids(pick(None, None, &[0, 2], 4, &busy)), [0]);
    }

    #[test]
    fn a_process_pinned_to_one_core_makes_it_busy() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let mut one = nix::sched::CpuSet::new();
        one.set(0).unwrap();
        nix::sched::sched_setaffinity(pid, &one).unwrap();
        let busy = pinned_processes();
        let _ = child.kill();
        let _ = child.wait();
        let me = format!("sleep {pid}");
        assert!(busy.get(&0).is_some_and(|who| who.contains(&me)), "{busy:?}");
    }
}
