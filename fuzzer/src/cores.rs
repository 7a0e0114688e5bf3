//! Which cores the clients run on: the ones asked for, among those this process may use (its
//! CPU affinity: `taskset`, a cgroup CPU set, a batch scheduler's allocation).

use anyhow::{anyhow, bail, Result};
use libafl_bolts::core_affinity::Cores;

/// The cores for `--cores SPEC` or `-j N`; without either, the first core this process may use.
pub fn choose(spec: Option<&str>, first_n: Option<usize>) -> Result<Cores> {
    pick(spec, first_n, &allowed(), machine())
}

fn pick(spec: Option<&str>, first_n: Option<usize>, allowed: &[usize], machine: usize) -> Result<Cores> {
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
        (_, Some(n)) => allowed[..n].to_vec(),
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
        (None, None) => allowed[..1].to_vec(),
    };
    Ok(Cores::from(ids))
}

/// The cores in this process's affinity mask (all of the machine's if it cannot be read).
fn allowed() -> Vec<usize> {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect(),
        Err(_) => (0..machine()).collect(),
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
        assert_eq!(ids(pick(None, None, &allowed, 4)), [1]);
        assert_eq!(ids(pick(None, Some(2), &allowed, 4)), [1, 3]);
        assert_eq!(ids(pick(Some("all"), None, &allowed, 4)), [1, 3]);
        assert_eq!(ids(pick(Some("3"), None, &allowed, 4)), [3]);
        let err = pick(Some("0-1"), None, &allowed, 4).unwrap_err().to_string();
        assert!(err.contains("may not run on core 0, only on 1,3"), "{err}");
        let err = pick(None, Some(3), &allowed, 4).unwrap_err().to_string();
        assert!(err.contains("may run on 2 core(s) only (1,3"), "{err}");
        let err = pick(Some("7"), None, &allowed, 4).unwrap_err().to_string();
        assert!(err.contains("core 7 does not exist, this machine has 4 core(s) (0-3)"), "{err}");
    }
}
