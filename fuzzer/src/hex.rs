//! `fuzzer hex FILE`: hex dump with offsets and an ASCII column.
use std::fmt::Write as _;

const ROW: usize = 24;

pub const YELLOW: &str = "\x1b[33m";
pub const BLUE: &str = "\x1b[34m";
pub const MAGENTA: &str = "\x1b[35m";
pub const RED: &str = "\x1b[31m";

/// Wrap `s` in an ANSI color when `on`; plain text otherwise (pipes, files).
pub fn paint(s: &str, color: &str, on: bool) -> String {
    if on {
        format!("{color}{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// One line per 24 bytes: `offset  hex bytes  ascii`.
pub fn dump(bytes: &[u8], color: bool) -> String {
    let mut out = String::new();
    for (i, row) in bytes.chunks(ROW).enumerate() {
        let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = row.iter().map(|&b| if (0x20..=0x7e).contains(&b) { b as char } else { '.' }).collect();
        // Pad the hex column of a short last row so the ASCII column lines up;
        // padding is done on plain text so color escapes do not skew widths.
        let _ = writeln!(
            out,
            "{}  {:<width$}  {}",
            paint(&format!("{:08x}", i * ROW), YELLOW, color),
            hex.join(" "),
            paint(&ascii, BLUE, color),
            width = ROW * 3 - 1,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_bytes_with_crlf() {
        let input = b"GET / HTTP/1.0\r\nHost: a\r\n\r\n\x00\xff\x7f";
        assert_eq!(input.len(), 30);
        let expected = "\
00000000  47 45 54 20 2f 20 48 54 54 50 2f 31 2e 30 0d 0a 48 6f 73 74 3a 20 61 0d  GET / HTTP/1.0..Host: a.
00000018  0a 0d 0a 00 ff 7f                                                        ......
";
        assert_eq!(dump(input, false), expected);
        // Both ASCII columns start at the same position.
        let cols: Vec<usize> = expected.lines().map(|l| l.rfind("  ").unwrap()).collect();
        assert_eq!(cols[0], cols[1]);
    }

    #[test]
    fn empty() {
        assert_eq!(dump(b"", false), "");
    }

    #[test]
    fn exactly_one_row() {
        let input: Vec<u8> = (b'a'..).take(24).collect();
        assert_eq!(
            dump(&input, false),
            "00000000  61 62 63 64 65 66 67 68 69 6a 6b 6c 6d 6e 6f 70 71 72 73 74 75 76 77 78  abcdefghijklmnopqrstuvwx\n"
        );
    }

    #[test]
    fn color_only_on_offset_and_ascii() {
        assert_eq!(
            dump(b"A\n", true),
            format!("\x1b[33m00000000\x1b[0m  41 0a{}  \x1b[34mA.\x1b[0m\n", " ".repeat(66))
        );
    }
}
