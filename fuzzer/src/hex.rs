//! `fuzzer hex FILE`: hex dump with offsets and an ASCII column; a comux file chunk by chunk.
use std::fmt::Write as _;

use contract::comux;

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

/// A test case as [`dump`] shows raw bytes; a comux file as a header line, then per chunk (in
/// file order) a line with its position, connection, sched, flags and length, and its data's
/// dump; bytes after the last chunk that can be played are dumped as such.
pub fn dump_test_case(bytes: &[u8], color: bool) -> String {
    let Some(file) = comux::parse(bytes) else { return dump(bytes, color) };
    let order: Vec<String> = file.schedule().map(|i| i.to_string()).collect();
    let mut out = match order.is_empty() {
        true => format!("{}\n", describe(&file)),
        false => format!("{}, played in the order {}\n", describe(&file), order.join(" ")),
    };
    let mut used = comux::HEADER_LEN;
    for (i, c) in file.chunks().enumerate() {
        let line = format!(
            "chunk {i}: connection {}, sched {}, flags {}, {}",
            c.conn,
            c.sched,
            flag_names(c.flags),
            plural(c.data.len(), "byte")
        );
        let _ = writeln!(out, "{}", paint(&line, MAGENTA, color));
        out += &dump(c.data, color);
        used += comux::CHUNK_HEADER_LEN + c.data.len();
    }
    if let Some(rest) = bytes.get(used..).filter(|rest| !rest.is_empty()) {
        let line = format!("{} after the last chunk (not played)", plural(rest.len(), "byte"));
        let _ = writeln!(out, "{}", paint(&line, RED, color));
        out += &dump(rest, color);
    }
    out
}

/// `comux file: 2 connections, 3 chunks`.
pub fn describe(file: &comux::Comux) -> String {
    format!("comux file: {}, {}", plural(file.num_conns as usize, "connection"), plural(file.len(), "chunk"))
}

/// `1 byte`, `2 bytes`.
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `await,keep-open`, `none`, unknown bits in hex.
fn flag_names(flags: u32) -> String {
    const NAMES: [(u32, &str); 4] = [
        (comux::AWAIT, "await"),
        (comux::KEEP_OPEN, "keep-open"),
        (comux::BYTEWISE, "bytewise"),
        (comux::RESET, "reset"),
    ];
    let mut names: Vec<String> =
        NAMES.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, name)| name.to_string()).collect();
    if flags & !comux::FLAGS != 0 {
        names.push(format!("{:#x}", flags & !comux::FLAGS));
    }
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(",")
    }
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

    #[test]
    fn comux_chunk_by_chunk_with_flags_by_name() {
        let mut file = comux::header(2, 3).to_vec();
        for (conn, sched, flags, data) in [
            (1, 5, comux::AWAIT | comux::KEEP_OPEN, &b"GET /"[..]),
            (0, 1, 0, b""),
            (0, 2, comux::RESET | 0x40, b"\x00X"),
        ] {
            file.extend_from_slice(&comux::chunk_header(conn, data.len() as u64, sched, flags));
            file.extend_from_slice(data);
        }
        file.extend_from_slice(b"zz");
        assert_eq!(
            dump_test_case(&file, false),
            format!(
                "comux file: 2 connections, 3 chunks, played in the order 1 2 0\n\
                 chunk 0: connection 1, sched 5, flags await,keep-open, 5 bytes\n\
                 00000000  47 45 54 20 2f{}  GET /\n\
                 chunk 1: connection 0, sched 1, flags none, 0 bytes\n\
                 chunk 2: connection 0, sched 2, flags reset,0x40, 2 bytes\n\
                 00000000  00 58{}  .X\n\
                 2 bytes after the last chunk (not played)\n\
                 00000000  7a 7a{}  zz\n",
                " ".repeat(57),
                " ".repeat(66),
                " ".repeat(66)
            )
        );
    }

    #[test]
    fn raw_bytes_are_dumped_as_before() {
        assert_eq!(dump_test_case(b"GET /", false), dump(b"GET /", false));
    }
}
