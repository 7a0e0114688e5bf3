//! The end-of-run summary (the old `fuzz-pserv.py` block), for our output folders and for
//! folders written by AFL++ (any `*/crashes` and `*/hangs` under OUT).

use super::findings::names_in;
use crate::fuzz::findings::{read_leaks, LeakKind, HANGS, TRAVERSALS};
use crate::{bugs, explain};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Solution files per instance folder, in order (`fuzz0`, `fuzz1`, ..., or AFL++'s names).
struct Found {
    crash_dirs: Vec<(PathBuf, usize)>,
    hang_dirs: Vec<(PathBuf, usize)>,
    /// Crash count by signal number (path traversals and leaks left out).
    signals: BTreeMap<u32, usize>,
    /// Path traversals: (crash file, path as opened, where it leads).
    traversals: Vec<(PathBuf, String, String)>,
    /// Leaks by kind (descriptor, memory): (crash file, what leaked).
    leaks: [Vec<(PathBuf, String)>; 2],
    /// Hangs in which the server left the connection open and waited (the idle verdict).
    left_open: usize,
    blocked: usize,
    spins: usize,
}

/// A folder of instances fuzzing the AddressSanitizer build (`fuzzK-asan`).
fn is_asan_instance(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n.to_string_lossy().ends_with("-asan"))
}

/// The signal number in an AFL crash name (`id:000000,sig:11,...`).
fn signal_of(name: &str) -> Option<u32> {
    let rest = &name[name.find("sig:")? + 4..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn scan(out: &Path) -> Result<Found> {
    if !out.is_dir() {
        bail!("{} is not an output folder: give the folder passed to -o (default ./fuzz_out)", out.display());
    }
    let mut instances: Vec<PathBuf> = std::fs::read_dir(out)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("crashes").is_dir() || p.join("hangs").is_dir())
        .collect();
    // fuzz2 before fuzz10.
    instances.sort_by_key(|p| {
        let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let digits: String =
            name.chars().rev().take_while(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
        (name[..name.len() - digits.len()].to_string(), digits.parse::<u64>().unwrap_or(0))
    });
    if instances.is_empty() {
        bail!("{} holds no fuzzer results (no */crashes or */hangs folders)", out.display());
    }
    let mut found = Found {
        crash_dirs: Vec::new(),
        hang_dirs: Vec::new(),
        signals: BTreeMap::new(),
        traversals: Vec::new(),
        leaks: [Vec::new(), Vec::new()],
        left_open: 0,
        blocked: 0,
        spins: 0,
    };
    for instance in instances {
        let crashes = names_in(&instance.join("crashes"));
        let listed = std::fs::read_to_string(instance.join(TRAVERSALS)).unwrap_or_default();
        let traversals: BTreeMap<&str, (&str, &str)> = listed
            .lines()
            .filter_map(|l| {
                let mut cols = l.splitn(3, '\t');
                Some((cols.next()?, (cols.next()?, cols.next()?)))
            })
            .collect();
        let leaks = read_leaks(&instance);
        for name in &crashes {
            let file = instance.join("crashes").join(name);
            if let Some((path, resolved)) = traversals.get(name.as_str()) {
                found.traversals.push((file, path.to_string(), resolved.to_string()));
            } else if let Some((kind, what)) = leaks.get(name.as_str()) {
                found.leaks[kind.index()].push((file, what.clone()));
            } else {
                *found.signals.entry(signal_of(name).unwrap_or(0)).or_default() += 1;
            }
        }
        if !crashes.is_empty() {
            found.crash_dirs.push((instance.join("crashes"), crashes.len()));
        }
        let hangs = names_in(&instance.join("hangs"));
        let kinds = std::fs::read_to_string(instance.join(HANGS)).unwrap_or_default();
        let kinds: BTreeMap<&str, &str> = kinds.lines().filter_map(|l| l.split_once('\t')).collect();
        found.left_open += hangs.iter().filter(|h| kinds.get(h.as_str()) == Some(&"left-open")).count();
        found.blocked += hangs.iter().filter(|h| kinds.get(h.as_str()) == Some(&"blocked-client")).count();
        found.spins += hangs.iter().filter(|h| kinds.get(h.as_str()) == Some(&"spin")).count();
        if !hangs.is_empty() {
            found.hang_dirs.push((instance.join("hangs"), hangs.len()));
        }
    }
    Ok(found)
}

pub fn text(out: &Path, color: bool) -> Result<String> {
    let found = scan(out)?;
    let paint = |code: &str, s: String| if color { format!("\x1b[{code}m{s}\x1b[0m") } else { s };
    let (title, count, path) = (|s: String| paint("1;35", s), |s: String| paint("31", s), |s: String| paint("33", s));
    let mut t = format!("{}\nLocated at: {}\n", title("[Fuzzing Summary]".into()), path(out.display().to_string()));
    let crashes: usize = found.crash_dirs.iter().map(|d| d.1).sum();
    if crashes == 0 {
        t += "Your server did not crash.\n";
    } else {
        t += &format!("Found {} crash{}.\n", count(crashes.to_string()), if crashes == 1 { "" } else { "es" });
        for (sig, n) in &found.signals {
            t += &format!(
                "   - Of these crashes, {} {} from receiving signal {sig}.\n",
                count(n.to_string()),
                if *n == 1 { "was" } else { "were" }
            );
            if let Some(means) = explain::signal(*sig as i32) {
                t += &indented(means);
            }
        }
        for kind in [LeakKind::Descriptor, LeakKind::Memory] {
            let leaks = &found.leaks[kind.index()];
            if leaks.is_empty() {
                continue;
            }
            let (name, means) = match kind {
                LeakKind::Descriptor => (explain::DESCRIPTOR_LEAK_NAME, explain::DESCRIPTOR_LEAK),
                LeakKind::Memory => (explain::MEMORY_LEAK_NAME, explain::MEMORY_LEAK),
            };
            let n = leaks.len();
            t += &format!(
                "   - Of these crashes, {} {} {name}{}:\n",
                count(n.to_string()),
                if n == 1 { "was a" } else { "were" },
                if n == 1 { "" } else { "s" }
            );
            let mut shown = std::collections::BTreeSet::new();
            for (file, what) in leaks {
                // Descriptor leaks by what leaked; memory leaks are told apart by triage.
                let what = if kind == LeakKind::Descriptor { what.as_str() } else { "" };
                if shown.len() < 5 && shown.insert(what) {
                    let name = file.file_name().unwrap_or_default().to_string_lossy();
                    let what = if what.is_empty() { String::new() } else { format!("{what}, ") };
                    t += &format!("        - {what}e.g. {name}\n");
                }
            }
            t += &indented(means);
        }
        if !found.traversals.is_empty() {
            let n = found.traversals.len();
            t += &format!(
                "   - Of these crashes, {} {} path traversal{}: the server reached a file outside its web root:\n",
                count(n.to_string()),
                if n == 1 { "was a" } else { "were" },
                if n == 1 { "" } else { "s" }
            );
            let mut shown = std::collections::BTreeSet::new();
            for (file, opened, resolved) in &found.traversals {
                if shown.len() < 5 && shown.insert(resolved) {
                    let name = file.file_name().unwrap_or_default().to_string_lossy();
                    t += &format!("        - {opened:?} (leads to {resolved}), e.g. {name}\n");
                }
            }
        }
        t += "   - Crash files can be found in the following directories:\n";
        for (dir, _) in &found.crash_dirs {
            t += &format!("        - {}\n", path(dir.display().to_string()));
        }
        if found.crash_dirs.iter().any(|(dir, _)| dir.parent().is_some_and(is_asan_instance)) {
            t += "   - Crashes in the -asan folders are memory errors AddressSanitizer caught; see the report with:\n        \
                  fuzzer run -- OUT/server-fuzz-address ARGS < FILE\n";
        }
    }
    let hangs: usize = found.hang_dirs.iter().map(|d| d.1).sum();
    if hangs == 0 {
        t += "Your server did not hang.\n";
    } else {
        t += &format!("Found {} hang{}.\n", count(hangs.to_string()), if hangs == 1 { "" } else { "s" });
        if found.left_open > 0 {
            let n = found.left_open;
            t += &format!(
                "   - In {} of these hangs the server left the connection open: it answered (or not) and then \
                 waited, with nothing left that would close it.\n",
                count(n.to_string())
            );
        }
        if found.blocked > 0 {
            t += &format!(
                "   - In {} of these hangs one slow client blocked the others: while one connection sat \
                 mid-request, another's whole request, accepted, was left unread. A server that reads a request \
                 while it holds a lock, or reads one connection until its request is whole before it reads \
                 another, does this: read without the lock, or read each connection as its bytes come.\n",
                count(found.blocked.to_string())
            );
        }
        if found.spins > 0 {
            t += &format!(
                "   - In {} of these hangs a server thread spun: it ran without a system call, a page fault or new \
                 code for at least four times as long as the slowest seed took (a loop that never advances; \
                 fuzzer triage says where).\n",
                count(found.spins.to_string())
            );
        }
        t += "   - Hang files can be found in the following directories:\n";
        for (dir, _) in &found.hang_dirs {
            t += &format!("        - {}\n", path(dir.display().to_string()));
        }
    }
    t += &persistent(out);
    t += &several_connections(out);
    t += &response_states(out);
    if crashes + hangs > 0 {
        match bugs::listed(out) {
            Some(groups) => {
                t += &groups;
                t += &format!(
                    "   - Each with its place, shortest input and replay commands: {}\n",
                    path(out.join("triage/report.md").display().to_string())
                );
            }
            None => t += &format!("Group them into bugs with: fuzzer triage {}\n", out.display()),
        }
        t += "Replay a file against your server (started normally) with: fuzzer send 127.0.0.1 PORT < FILE\n";
    }
    t += &format!("Want to see this again? Run fuzzer --summary {}\n", out.display());
    Ok(t)
}

/// `text` as the lines under a summary item, wrapped at about 100 columns.
fn indented(text: &str) -> String {
    let mut t = String::new();
    let mut line = String::from("     ");
    for word in text.split_whitespace() {
        if line.len() + word.len() > 100 {
            t += line.trim_end();
            t += "\n";
            line = String::from("     ");
        }
        line += word;
        line += " ";
    }
    t + line.trim_end() + "\n"
}

/// A `fuzzer_stats`-like file's number under `key` (0 if it has none).
fn figure(text: &str, key: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(&format!("{key:<18}: "))).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The multi-connection stage's share of the time and of the finds (`fuzzK/several_connections_stats`).
fn several_connections(out: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(out) else { return String::new() };
    let [mut stage_seconds, mut stage_finds, mut seconds, mut finds] = [0; 4];
    for dir in entries.flatten().map(|e| e.path()) {
        let Ok(text) = std::fs::read_to_string(dir.join(crate::fuzz::findings::SEVERAL_CONNECTIONS)) else { continue };
        stage_seconds += figure(&text, "stage_seconds");
        stage_finds += figure(&text, "stage_finds");
        seconds += figure(&text, "seconds");
        finds += figure(&text, "finds");
    }
    if seconds == 0 {
        return String::new();
    }
    use crate::fuzz::comux_share::{BASE_SHARE, MAX_SHARE};
    format!(
        "Test cases of several connections: {:.0} % of the fuzzing time, {stage_finds} of {finds} finds \
         ({:.0} % of the time, up to {:.0} % while they find more than the rest).\n",
        100.0 * stage_seconds as f64 / seconds as f64,
        100.0 * BASE_SHARE,
        100.0 * MAX_SHARE
    )
}

/// Queue entries kept for a new transition between response codes (`+state` in their names),
/// and how many of them reached no new edge.
fn response_states(out: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(out) else { return String::new() };
    let (mut kept, mut alone) = (0, 0);
    for queue in entries.flatten().map(|e| e.path().join("queue")) {
        let Ok(files) = std::fs::read_dir(queue) else { continue };
        for name in files.flatten().map(|f| f.file_name().to_string_lossy().into_owned()) {
            if name.starts_with("id:") && name.contains(",+state") {
                kept += 1;
                alone += u64::from(!name.contains(",+cov"));
            }
        }
    }
    if kept == 0 {
        return String::new();
    }
    format!(
        "Response codes: {kept} queue entries made a transition between status codes that no earlier \
         one made, {alone} of them without a new edge (--no-state keeps new edges only).\n"
    )
}

/// What persistent mode did (`fuzzK/persistent_stats`), if it ran: runs in reused servers,
/// results dropped as seen only there, instances that fell back.
fn persistent(out: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(out) else { return String::new() };
    let (mut runs, mut reused, mut only, mut fell_back) = (0, 0, 0, Vec::new());
    for dir in entries.flatten().map(|e| e.path()) {
        let Ok(text) = std::fs::read_to_string(dir.join(crate::fuzz::findings::PERSISTENT)) else { continue };
        (runs, reused, only) = (
            runs + figure(&text, "runs"),
            reused + figure(&text, "reused_runs"),
            only + figure(&text, "persistent_only"),
        );
        if text.lines().any(|l| l.starts_with("mode") && l.contains(": fork")) {
            fell_back.push(dir.file_name().unwrap_or_default().to_string_lossy().into_owned());
        }
    }
    if runs == 0 {
        return String::new();
    }
    let mut t = format!(
        "Persistent mode: {reused} of {runs} test cases ran in a server reused for several.
"
    );
    if only > 0 {
        t += &format!(
            "   - {only} crash{} or hang{} of a reused server did not happen again in a fresh one and {} not saved \
             (the server keeps state from one connection to the next).
",
            if only == 1 { "" } else { "es" },
            if only == 1 { "" } else { "s" },
            if only == 1 { "was" } else { "were" }
        );
    }
    if !fell_back.is_empty() {
        fell_back.sort();
        t += &format!(
            "   - {} went back to one test case per server because of that.
",
            fell_back.join(", ")
        );
    }
    t
}

pub fn print(out: &Path) -> Result<()> {
    print!("{}", text(out, std::io::stdout().is_terminal())?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_by_signal_and_lists_folders_with_findings() {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path().to_path_buf();
        for (dir, files) in [
            (
                "fuzz0/crashes",
                &[
                    "README.txt",
                    "id:000000,sig:11,src:000001,time:5,execs:9,op:havoc",
                    "id:000001,sig:06,src:000002,time:7,execs:20,op:havoc",
                ][..],
            ),
            ("fuzz0/hangs", &[][..]),
            ("fuzz1/crashes", &["id:000000,sig:11,src:000003,time:9,execs:30,op:havoc"][..]),
            ("fuzz1/hangs", &["id:000000,src:000001,time:3,execs:4,op:havoc"][..]),
        ] {
            std::fs::create_dir_all(out.join(dir)).unwrap();
            for f in files {
                std::fs::write(out.join(dir).join(f), b"x").unwrap();
            }
        }
        let text = text(&out, false).unwrap();
        let o = out.display();
        std::fs::write(out.join("fuzz1").join(HANGS), "id:000000,src:000001,time:3,execs:4,op:havoc\tleft-open\n")
            .unwrap();
        let with_kinds = super::text(&out, false).unwrap();
        assert!(with_kinds.contains("Found 1 hang.\n   - In 1 of these hangs the server left the connection open"));
        assert_eq!(
            text,
            format!(
                "[Fuzzing Summary]\nLocated at: {o}\nFound 3 crashes.\n   - Of these crashes, 1 was from receiving signal 6.\n   - Of these crashes, 2 were from receiving signal 11.\n   - Crash files can be found in the following directories:\n        - {o}/fuzz0/crashes\n        - {o}/fuzz1/crashes\nFound 1 hang.\n   - Hang files can be found in the following directories:\n        - {o}/fuzz1/hangs\nGroup them into bugs with: fuzzer triage {o}\nReplay a file against your server (started normally) with: fuzzer send 127.0.0.1 PORT < FILE\nWant to see this again? Run fuzzer --summary {o}\n"
            )
        );
    }

    #[test]
    fn traversals_are_counted_apart_with_their_paths_and_asan_folders_get_a_hint() {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path().to_path_buf();
        let traversal = "id:000001,sig:12,src:000002,time:7,execs:20,op:havoc";
        for (dir, file) in [
            ("fuzz0/crashes", traversal),
            ("fuzz0/crashes", "id:000000,sig:11,src:000001,time:5,execs:9,op:havoc"),
            ("fuzz0-asan/crashes", "id:000000,sig:06,src:000001,time:5,execs:9,op:havoc"),
        ] {
            std::fs::create_dir_all(out.join(dir)).unwrap();
            std::fs::write(out.join(dir).join(file), b"x").unwrap();
        }
        std::fs::write(out.join("fuzz0").join(TRAVERSALS), format!("{traversal}\t/r/../etc/passwd\t/etc/passwd\n"))
            .unwrap();
        let text = text(&out, false).unwrap();
        assert!(text.contains("Found 3 crashes."), "{text}");
        assert!(!text.contains("signal 12"), "{text}");
        assert!(text.contains("1 was from receiving signal 6") && text.contains("1 was from receiving signal 11"));
        assert!(text.contains("1 was a path traversal: the server reached a file outside its web root:\n"), "{text}");
        assert!(text.contains(&format!("        - \"/r/../etc/passwd\" (leads to /etc/passwd), e.g. {traversal}\n")));
        assert!(text.contains("memory errors AddressSanitizer caught"), "{text}");
    }

    #[test]
    fn leaks_are_counted_apart_by_kind_with_what_leaked_and_sigpipe_is_explained() {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path().to_path_buf();
        let fd = "id:000000,sig:16,src:000001,time:5,execs:9,op:havoc";
        let fd2 = "id:000001,sig:16,src:000002,time:6,execs:10,op:havoc";
        let mem = "id:000002,sig:30,src:000001,time:7,execs:11,op:havoc";
        let pipe = "id:000003,sig:13,src:000001,time:8,execs:12,op:havoc";
        std::fs::create_dir_all(out.join("fuzz0/crashes")).unwrap();
        for file in [fd, fd2, mem, pipe] {
            std::fs::write(out.join("fuzz0/crashes").join(file), b"x").unwrap();
        }
        let leaks = format!(
            "{fd}\tdescriptor\tfile /r/index.html\n{fd2}\tdescriptor\ta client's connection (TCP socket)\n\
             {mem}\tmemory\tthe heap grew by 5 bytes\n"
        );
        std::fs::write(out.join("fuzz0").join(crate::fuzz::findings::LEAKS), leaks).unwrap();
        let text = text(&out, false).unwrap();
        assert!(text.contains("Found 4 crashes."), "{text}");
        assert!(!text.contains("signal 16") && !text.contains("signal 30"), "{text}");
        assert!(text.contains("   - Of these crashes, 2 were descriptor leaks:\n"), "{text}");
        assert!(text.contains(&format!("        - file /r/index.html, e.g. {fd}\n")), "{text}");
        assert!(text.contains(&format!("        - a client's connection (TCP socket), e.g. {fd2}\n")), "{text}");
        // The explanations, wrapped: compared word by word.
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains("Fix: close every descriptor on every path"), "{text}");
        assert!(text.contains("   - Of these crashes, 1 was a memory leak:\n"), "{text}");
        assert!(text.contains(&format!("        - e.g. {mem}\n")), "{text}");
        assert!(words.contains("Fix: free what is allocated per request"), "{text}");
        assert!(text.contains("   - Of these crashes, 1 was from receiving signal 13.\n     SIGPIPE: the server wrote"));
        assert!(words.contains("signal(SIGPIPE, SIG_IGN);") && words.contains("MSG_NOSIGNAL"), "{text}");
        assert!(text.lines().all(|l| l.len() <= 110), "{text}");
    }

    #[test]
    fn the_multi_connection_stages_share_is_summed_over_the_instances() {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path();
        for (dir, figures) in [("fuzz0", [6, 1, 60, 20]), ("fuzz1", [12, 2, 60, 10]), ("fuzz0-asan", [0; 4])] {
            std::fs::create_dir_all(out.join(dir).join("crashes")).unwrap();
            let text: String = ["stage_seconds", "stage_finds", "seconds", "finds"]
                .iter()
                .zip(figures)
                .map(|(key, value)| format!("{key:<18}: {value}\n"))
                .collect();
            std::fs::write(out.join(dir).join(crate::fuzz::findings::SEVERAL_CONNECTIONS), text).unwrap();
        }
        let text = text(out, false).unwrap();
        assert!(text.contains("Test cases of several connections: 15 % of the fuzzing time, 3 of 30 finds (10 % of the time, up to 50 %"), "{text}");
    }

    #[test]
    fn queue_entries_kept_for_a_new_response_code_transition_are_counted() {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path();
        for (dir, names) in [
            ("fuzz0", &["id:000001,src:000000,time:5,execs:9,op:havoc,+cov,+state", "id:000002,orig:a.req"][..]),
            ("fuzz0-asan", &["id:000003,src:000001,time:7,execs:20,op:http+json,+state"][..]),
        ] {
            std::fs::create_dir_all(out.join(dir).join("queue")).unwrap();
            std::fs::create_dir_all(out.join(dir).join("crashes")).unwrap();
            for name in names {
                std::fs::write(out.join(dir).join("queue").join(name), b"GET / HTTP/1.0\r\n\r\n").unwrap();
            }
        }
        let words = text(out, false).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains("Response codes: 2 queue entries made a transition"), "{words}");
        assert!(words.contains("1 of them without a new edge"), "{words}");
    }

    #[test]
    fn empty_folder_is_a_plain_error() {
        let err = text(Path::new("/nonexistent-out"), false).unwrap_err().to_string();
        assert!(err.contains("is not an output folder"), "{err}");
    }
}
