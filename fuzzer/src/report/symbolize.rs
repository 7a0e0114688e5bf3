//! Code addresses to function, file and line, with `llvm-symbolizer` when there is one (as ASan
//! itself; binutils' `addr2line` misses functions clang inlined), else `addr2line`.
//!
//! Triage runs ASan with `symbolize=0`: symbolizing, each run of the server starts its own
//! `llvm-symbolizer` (340 files replayed twice: 27 s, against 7 s without). The report's frames
//! then read `#1 0x55d0c1 (/path/server+0x944e5)`, and are symbolized here, once per address.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Mutex;

/// A source position; `line` 0 when unknown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

#[derive(Default)]
pub struct Symbolizer {
    /// (module, offset) -> its frames, innermost (inlined) first.
    known: Mutex<HashMap<(String, u64), Vec<Frame>>>,
}

impl Symbolizer {
    /// The frames of `offset` in `module` (several when functions were inlined there), or none
    /// when the symbolizer cannot tell (no debug information, or no symbolizer).
    pub fn frames(&self, module: &str, offset: u64) -> Vec<Frame> {
        let key = (module.to_string(), offset);
        if let Some(frames) = self.known.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return frames.clone();
        }
        let frames = symbolize(module, offset);
        self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(key, frames.clone());
        frames
    }
}

/// Both tools print pairs of lines, function then `file:line[:column]`, innermost first.
fn symbolize(module: &str, offset: u64) -> Vec<Frame> {
    static LLVM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let llvm = *LLVM.get_or_init(|| Command::new("llvm-symbolizer").arg("--version").output().is_ok());
    let address = format!("{offset:#x}");
    let output = if llvm {
        Command::new("llvm-symbolizer").args(["--inlines", &format!("--obj={module}"), &address]).output()
    } else {
        Command::new("addr2line").args(["-f", "-i", "-e", module, &address]).output()
    };
    let Ok(output) = output else { return Vec::new() };
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    lines
        .chunks(2)
        .filter_map(|pair| {
            let [function, place] = pair else { return None };
            let (file, line) = file_line(place)?;
            (*function != "??").then(|| Frame { function: function.to_string(), file: file.to_string(), line })
        })
        .collect()
}

/// `http.c:42`, `http.c:42:9` or `http.c:42 (discriminator 3)`; line 0 when unknown (`??:0`).
fn file_line(place: &str) -> Option<(&str, u32)> {
    let place = place.split(" (").next()?;
    let (rest, last) = place.rsplit_once(':')?;
    match rest.rsplit_once(':') {
        Some((file, line)) if line.parse::<u32>().is_ok() && last.parse::<u32>().is_ok() => {
            Some((file, line.parse().ok()?))
        }
        _ => Some((rest, last.parse().unwrap_or(0))),
    }
}

/// The module and offset of an unsymbolized ASan frame line: `#1 0x55d0c1  (/path/server+0x944e5)`.
pub fn module_offset(line: &str) -> Option<(&str, u64)> {
    let inner = &line[line.find(" (")? + 2..];
    let inner = &inner[..inner.find(')')?];
    let (module, offset) = inner.rsplit_once("+0x")?;
    Some((module, u64::from_str_radix(offset, 16).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsymbolized_frames_name_their_module_and_offset() {
        let line = "#1 0x55df3ef024e5  (/tmp/out/server-fuzz-address+0x944e5) (BuildId: 9c2b18bb)";
        assert_eq!(module_offset(line), Some(("/tmp/out/server-fuzz-address", 0x944e5)));
        assert_eq!(module_offset("#0 0x1 in strlen x.c:1"), None);
    }

    #[test]
    fn both_tools_positions_are_read() {
        assert_eq!(file_line("/src/http.c:363:60"), Some(("/src/http.c", 363)));
        assert_eq!(file_line("/src/http.c:363"), Some(("/src/http.c", 363)));
        assert_eq!(file_line("/src/http.c:12 (discriminator 3)"), Some(("/src/http.c", 12)));
        assert_eq!(file_line("??:0"), Some(("??", 0)));
    }
}
