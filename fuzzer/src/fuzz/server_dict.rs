//! The server's own strings as a dictionary. A student's server compares requests against its
//! literals (paths, header names, cookie names, a debugging token) and havoc finds a 12-byte one
//! only by luck. AFL++ collects such constants in its compiler pass (the auto-dictionary); here
//! they are read from the built binary's read-only data, which works for `--server` binaries
//! too. Libraries are linked dynamically, so what is found there is the server's (and a few of
//! the runtime's own names, left out).

use anyhow::{Context, Result};
use object::{Object, ObjectSection};
use std::path::Path;

/// Strings kept, at most (AFL++ keeps up to 2,000 auto-dictionary entries; a server has far
/// fewer literals, and a long dictionary dilutes the built-in one).
const MAX_STRINGS: usize = 500;
/// Length bounds: a 1-byte string is what havoc makes anyway; a long one is a message.
const LENGTHS: std::ops::RangeInclusive<usize> = 2..=64;

/// Write the strings of `binary` that look like tokens to `dict` (AFL `-x` format); returns
/// how many were written.
pub fn write(binary: &Path, dict: &Path) -> Result<usize> {
    let data = std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let file = object::File::parse(&*data).with_context(|| format!("{} is not an executable", binary.display()))?;
    let rodata = match file.section_by_name(".rodata") {
        Some(section) => section.data().with_context(|| format!("{}: unreadable .rodata", binary.display()))?,
        None => &[],
    };
    let words = tokens(rodata);
    std::fs::write(dict, dictionary(&words)).with_context(|| format!("cannot write {}", dict.display()))?;
    Ok(words.len())
}

/// `words` in AFL `-x` format, one `sN="..."` line each.
fn dictionary(words: &[&[u8]]) -> String {
    let mut text = String::from("# Strings of the server's binary (its literals), found by `fuzzer`.\n");
    for (i, word) in words.iter().enumerate() {
        text.push_str(&format!("s{i}=\"{}\"\n", escape(word)));
    }
    text
}

/// The NUL-terminated printable strings of `data` that could be compared against a request:
/// no whitespace (log messages), no printf directives (formats), not the runtime's names.
fn tokens(data: &[u8]) -> Vec<&[u8]> {
    let mut seen = std::collections::HashSet::new();
    data.split(|&b| b == 0)
        .filter(|s| LENGTHS.contains(&s.len()) && s.iter().all(|&b| b.is_ascii_graphic()))
        .filter(|s| !has_directive(s) && !s.starts_with(b"__AFL"))
        .filter(|s| seen.insert(*s))
        .take(MAX_STRINGS)
        .collect()
}

/// Whether `s` holds a printf conversion such as `%d`, `%zu`, `%.*s` or `%-10s`.
fn has_directive(s: &[u8]) -> bool {
    s.iter().enumerate().filter(|&(_, &b)| b == b'%').any(|(i, _)| {
        let rest = s[i + 1..].iter().skip_while(|b| b"-+ #0123456789.*hlzjt".contains(b));
        rest.take(1).any(|b| b"diouxXcspfeEgG".contains(b))
    })
}

/// A dictionary value as AFL writes it: printable bytes as they are but `"` and `\`, which
/// are escaped as `\xNN` like everything else.
fn escape(word: &[u8]) -> String {
    word.iter()
        .map(|&b| {
            if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
                (b as char).to_string()
            } else {
                format!("\\x{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_kept_and_messages_formats_and_runtime_names_left_out() {
        let data = b"\0X-Debug-Token\0dbg-7f3a91c2\0/api/login\0cannot open %s\0Content-Length: %zu\r\n\0\
            bytes=%ld-%ld\0%2e%2e\0__AFL_SHM_ID\0a\0/api/login\0{\"a\":1}\0\x01\x02\0";
        let words: Vec<String> = tokens(data).iter().map(|w| String::from_utf8_lossy(w).into_owned()).collect();
        // `%2e%2e` reads as a format (width 2, `e`): a rare loss, as formats are many.
        assert_eq!(words, ["X-Debug-Token", "dbg-7f3a91c2", "/api/login", "{\"a\":1}"]);
    }

    #[test]
    fn written_dictionaries_load_back_as_the_same_tokens() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let dict = dir.join("d");
        let words: [&[u8]; 3] = [b"a\"b", b"c\\d", b"/x"];
        std::fs::write(&dict, dictionary(&words)).unwrap();
        let tokens = libafl::mutators::Tokens::new().add_from_files([&dict]).unwrap();
        assert_eq!(tokens.tokens(), &words.iter().map(|w| w.to_vec()).collect::<Vec<_>>());
    }
}
