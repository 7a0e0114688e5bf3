//! Triage's results: `OUT/triage.json` (`crate::bugs`) and `OUT/triage/report.md`, one
//! section per bug with its source, shortest input and replay.

use crate::bugs::{self, Group};
use crate::explain::{DESCRIPTOR_LEAK_NAME, MEMORY_LEAK_NAME};
use crate::runner::target::Target;
use anyhow::{Context, Result};
use std::path::Path;

/// What the replay commands of `report.md` need: the triaged build, the web root it was
/// replayed with, and the folder it was built in (for the source around each bug).
pub struct Replayed<'a> {
    pub target: &'a Target,
    pub root: &'a Path,
    pub sources: &'a Path,
}

/// `OUT/triage.json` and `OUT/triage/report.md`.
pub fn write(out: &Path, groups: &[Group], replayed: &Replayed) -> Result<()> {
    bugs::save(out, groups)?;
    let dir = out.join("triage");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("report.md"), markdown(out, groups, replayed)).context("cannot write triage/report.md")
}

/// `report.md`: one section per bug, with the source around it, its shortest input and how to
/// replay it.
fn markdown(out: &Path, groups: &[Group], replayed: &Replayed) -> String {
    let mut t = String::from("# Triage\n\n");
    if groups.is_empty() {
        t += "No crash or hang files.\n";
        return t;
    }
    t += &bugs::list(groups).replace("   ", "");
    for (n, g) in groups.iter().enumerate() {
        let calls = g.calls.as_ref().map_or(String::new(), |f| format!(", calling `{f}`"));
        t += &format!("\n## {}. {}{}{calls}\n\n", n + 1, g.kind, bugs::place(&g.location));
        let files =
            format!("{} file{}, e.g. `{}`", g.files.len(), if g.files.len() == 1 { "" } else { "s" }, g.files[0]);
        t += &match g.runs {
            0 => format!("Not replayed ({files}).\n"),
            runs => format!("Reproduced in {} of {runs} runs ({files}).\n", g.reproduced),
        };
        if let Some(means) = crate::explain::kind(&g.kind) {
            t += &format!("\n{means}\n");
        }
        if g.frames.len() > 1 {
            t += &format!("\nCall stack in your code: {}\n", g.frames.join(" <- "));
        }
        if let Some(excerpt) = excerpt(replayed.sources, &g.location) {
            t += &format!("\n```c\n{excerpt}```\n");
        }
        if let Some(min) = &g.minimized {
            // gdb has nothing to show of a leak: the run ends in the preload's check.
            let gdb = ![DESCRIPTOR_LEAK_NAME, MEMORY_LEAK_NAME].contains(&g.kind.as_str());
            t += &replay(out, min, replayed, gdb);
        }
    }
    t
}

/// A group's shortest input (`min`, relative to OUT) as text (and hex when it is not all text;
/// a comux file chunk by chunk), and the commands that replay it.
fn replay(out: &Path, min: &str, replayed: &Replayed, gdb: bool) -> String {
    let bytes = std::fs::read(out.join(min)).unwrap_or_default();
    let mut t = format!("\nShortest input found (`{min}`, {} bytes):\n\n", bytes.len());
    if contract::comux::is_comux(&bytes) {
        // Several connections: chunk by chunk, as `fuzzer hex` shows it.
        t += &format!("```\n{}```\n", crate::hex::dump_test_case(&bytes, false));
    } else {
        t += &format!("```\n{}\n```\n", escaped(&bytes));
        if !bytes.iter().all(|&b| printable(b)) {
            t += &format!("\n```\n{}```\n", crate::hex::dump(&bytes, false));
        }
    }
    t += "\nReplay it:\n\n```\n";
    let target = replayed.target;
    let root = replayed.root.display().to_string();
    let args = target.args.replace("{port}", "8080").replace("{root}", &root);
    // With --root, a path traversal is seen as one.
    let oracle = if target.serves_root() { format!("--root {root} ") } else { String::new() };
    let input = out.join(min);
    let (binary, input) = (target.binary.display(), input.canonicalize().unwrap_or(input));
    let input = input.display();
    t += &format!("fuzzer run {oracle}-- {binary} {args} < {input}\n");
    if gdb {
        t += &format!("fuzzer run --gdb {oracle}-- {binary} {args} < {input}    # stops where it fails\n");
    }
    t += &format!("fuzzer send 127.0.0.1 PORT < {input}    # against your server, started normally\n```\n");
    t
}

/// A byte a request shows as text: printable ASCII, tab and line ends.
fn printable(b: u8) -> bool {
    matches!(b, 0x20..0x7f | b'\t' | b'\r' | b'\n')
}

/// The request as text, with the bytes that are not [`printable`] escaped.
fn escaped(bytes: &[u8]) -> String {
    let mut t = String::new();
    for &b in bytes {
        match b {
            b'\r' => t += "\\r",
            b'\n' => t += "\\n\n",
            b'\\' => t += "\\\\",
            _ if printable(b) => t.push(b as char),
            _ => t += &format!("\\x{b:02x}"),
        }
    }
    t
}

/// Three lines of source on either side of `function (file:line)` (a file under `sources`, or
/// absolute), the line marked.
fn excerpt(sources: &Path, location: &str) -> Option<String> {
    let inner = location.rsplit_once(" (")?.1.strip_suffix(')')?;
    let (file, line) = inner.rsplit_once(':')?;
    let line: usize = line.parse().ok()?;
    let text = std::fs::read_to_string(sources.join(file)).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let from = line.saturating_sub(4);
    let to = (line + 3).min(lines.len());
    if from >= to {
        return None;
    }
    Some(
        (from..to)
            .map(|i| format!("{} {:>5} | {}\n", if i + 1 == line { ">" } else { " " }, i + 1, lines[i]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaks_and_sigpipe_are_explained_and_leaks_get_no_gdb_replay() {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path();
        std::fs::create_dir_all(out.join("triage")).unwrap();
        std::fs::write(out.join("triage/1.min"), b"GET /a HTTP/1.0\r\n\r\n").unwrap();
        let group = |kind: &str, location: &str| Group {
            kind: kind.into(),
            location: location.into(),
            frames: vec![location.into()],
            calls: None,
            files: vec!["fuzz0/crashes/id:000000".into()],
            reproduced: 5,
            runs: 5,
            minimized: Some("triage/1.min".into()),
        };
        let target = Target::new("/bin/server".into(), None);
        let replayed = Replayed { target: &target, root: Path::new("/r"), sources: out };
        let text = markdown(
            out,
            &[
                group(DESCRIPTOR_LEAK_NAME, "of a file in the web root"),
                group(MEMORY_LEAK_NAME, "note_cookie (server.c:52)"),
                group("SIGPIPE", "send_all (server.c:30)"),
            ],
            &replayed,
        );
        let section = |n: usize| text.split("\n## ").nth(n).unwrap().to_string();
        let (fd, memory, pipe) = (section(1), section(2), section(3));
        assert!(fd.starts_with("1. descriptor leak of a file in the web root\n"), "{fd}");
        assert!(fd.contains(crate::explain::DESCRIPTOR_LEAK) && !fd.contains("--gdb"), "{fd}");
        assert!(memory.starts_with("2. memory leak in note_cookie (server.c:52)\n"), "{memory}");
        assert!(memory.contains(crate::explain::MEMORY_LEAK) && !memory.contains("--gdb"), "{memory}");
        assert!(pipe.contains(crate::explain::SIGPIPE) && pipe.contains("--gdb"), "{pipe}");
    }

    #[test]
    fn escaped_inputs_keep_lines_and_show_other_bytes() {
        assert_eq!(escaped(b"GET /\x00\xff HTTP/1.0\r\n"), "GET /\\x00\\xff HTTP/1.0\\r\\n\n");
    }
}
