//! `fuzzer send ADDR PORT < FILE`: replay one input against a listening server: raw bytes on one
//! connection, a comux file on its connections (played by [`crate::comux::play`]).
use std::io::{self, ErrorKind, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use contract::comux::{self, Comux};

use crate::comux::play::{play, Conn, End, Pacing, Played, Server};
use crate::hex::{paint, MAGENTA, RED, YELLOW};

const EXIT_HANG: u8 = 3;

#[derive(clap::Args)]
#[command(after_help = "\
A comux file (several connections, as `fuzzer hex` shows it) is played chunk by chunk, every
connection read all the time: a connection opens at its first chunk and is half-closed after its
last; flag await waits for the reply to go quiet (100 ms), keep-open delays the half-close until
everything is sent and the server has been quiet for 200 ms, bytewise sends one byte per send
(2 ms apart), reset closes with a RST and skips the connection's later chunks. Its replies are printed in the order their bytes arrived, under a
line naming the connection that speaks, `--- connection N ---` (N as in the file, from 0),
repeated whenever another connection speaks; then, after `--- summary ---`, one line per
connection: bytes sent of its chunks, bytes received, and how it ended.

Exit status:
  0  the server closed the connection(s) (with or without a reply)
  1  error (e.g. connection refused, host not found)
  3  the server kept a connection open without sending anything for --timeout seconds (a hang?)")]
pub struct Args {
    /// Server address: IPv4, IPv6 (e.g. ::1) or a host name (e.g. localhost).
    pub addr: String,
    /// Server TCP port.
    pub port: u16,
    /// Give up after this many seconds without data from the server.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_secs)]
    pub timeout: f64,
}

fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let color = io::stdout().is_terminal();
    println!("Reading from STDIN and sending to server...");
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input).context("could not read stdin")?;
    let server = Server::resolve(&args.addr, args.port)?;
    let played = play(&server, &input, Pacing::new(Duration::from_secs_f64(args.timeout)))?;
    let mut out = io::stdout().lock();
    let hang = match comux::parse(&input) {
        None => one_connection(&mut out, &played, input.len(), args.timeout, color)?,
        Some(file) => several_connections(&mut out, &played, &file, args.timeout, color)?,
    };
    out.flush()?;
    drop(out);
    match hang {
        Some(why) => {
            eprintln!("{why}");
            Ok(ExitCode::from(EXIT_HANG))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Raw bytes' reply, as this command has always printed it; the hang message if it timed out.
fn one_connection(
    out: &mut impl Write,
    played: &Played,
    total: usize,
    timeout: f64,
    color: bool,
) -> Result<Option<String>> {
    let conn = &played.conns[0];
    let (sent, reply) = (conn.sent, &conn.reply);
    // At the timeout either no reply came on the open connection, or the server had ended its
    // reply but not taken all the input.
    let hang = played.timed_out && matches!(conn.end, End::Open);
    let writer_done = !played.timed_out;
    writeln!(out, "{} Sent bytes: {}", paint("---------->", MAGENTA, color), paint(&sent.to_string(), YELLOW, color))?;
    match &conn.send_error {
        Some(e) if closed_first(e) => {
            let msg = format!("Server closed the connection after {sent} of {total} bytes were sent.");
            writeln!(out, "{}", paint(&msg, RED, color))?;
        }
        Some(e) => return Err(io::Error::new(e.kind(), e.to_string())).context("could not send the input"),
        None => {}
    }
    if !reply.is_empty() {
        writeln!(
            out,
            "{} Received bytes: {}",
            paint("<----------", MAGENTA, color),
            paint(&reply.len().to_string(), YELLOW, color)
        )?;
        out.write_all(reply)?;
        if !reply.ends_with(b"\n") {
            writeln!(out)?;
        }
    } else if !hang && writer_done {
        writeln!(out, "{}", paint("Server closed the connection without replying.", RED, color))?;
    }
    if matches!(conn.end, End::ResetByServer) {
        let msg = format!("Connection reset by server after {} bytes.", reply.len());
        writeln!(out, "{}", paint(&msg, RED, color))?;
    }
    Ok(if hang {
        Some(format!("No reply for {timeout} s: the server is still holding the connection open (a hang?)."))
    } else if !writer_done {
        Some(format!(
            "The server stopped reading after {sent} of {total} bytes but did not close the connection within {timeout} s (a hang?)."
        ))
    } else {
        None
    })
}

/// A comux file's replies, each under its connection's number in the order they arrived, then
/// a line per connection; the hang message if it timed out.
fn several_connections(
    out: &mut impl Write,
    played: &Played,
    file: &Comux,
    timeout: f64,
    color: bool,
) -> Result<Option<String>> {
    writeln!(out, "{}", crate::hex::describe(file))?;
    for (conn, bytes) in &played.transcript {
        writeln!(out, "{}", paint(&format!("--- connection {conn} ---"), MAGENTA, color))?;
        out.write_all(bytes)?;
        if !bytes.ends_with(b"\n") {
            writeln!(out)?;
        }
    }
    writeln!(out, "{}", paint("--- summary ---", MAGENTA, color))?;
    for (n, conn) in played.conns.iter().enumerate() {
        if let Some(line) = summary(n, conn, played, timeout) {
            writeln!(out, "{line}")?;
        }
    }
    let open: Vec<String> = played
        .conns
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c.end, End::Open))
        .map(|(n, _)| n.to_string())
        .collect();
    Ok(if !played.timed_out {
        None
    } else if !open.is_empty() {
        let which = if open.len() == 1 { "connection" } else { "connections" };
        Some(format!(
            "Nothing received for {timeout} s: the server is still holding {which} {} open (a hang?).",
            open.join(", ")
        ))
    } else {
        let n = played.blocked.unwrap_or(0);
        Some(format!("The server stopped reading connection {n} but did not close it within {timeout} s (a hang?)."))
    })
}

/// One connection's line of the summary (None for a connection no chunk is sent on).
fn summary(n: usize, conn: &Conn, played: &Played, timeout: f64) -> Option<String> {
    let why_short = if conn.sent == conn.to_send {
        String::new()
    } else if let Some(e) = &conn.send_error {
        if closed_first(e) {
            " (the server closed it first)".to_string()
        } else {
            format!(" (sending failed: {e})")
        }
    } else if matches!(conn.end, End::ResetByUs) {
        " (its chunks after the reset are not sent)".to_string()
    } else if played.blocked == Some(n as u32) {
        " (the server stopped reading)".to_string()
    } else {
        String::new()
    };
    let end = match &conn.end {
        End::Unused => return None,
        End::Open if played.timed_out => format!("still open after {timeout} s without data (a hang?)"),
        End::Open => "open".to_string(),
        End::ClosedByServer => "closed by the server".to_string(),
        End::ResetByServer => "reset by the server".to_string(),
        End::ResetByUs => "reset by us (flag reset)".to_string(),
        End::Unreached(e) => format!("could not connect ({e}): did the server crash or stop listening?"),
    };
    Some(format!(
        "connection {n}: sent {} of {} bytes{why_short}, received {} bytes, {end}",
        conn.sent,
        conn.to_send,
        conn.reply.len()
    ))
}

/// A send failed because the server had closed (or reset) the connection.
fn closed_first(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comux_replies_are_printed_in_arrival_order_under_the_connection_that_speaks() {
        let mut file = comux::header(3, 2).to_vec();
        for conn in [0, 1] {
            file.extend_from_slice(&comux::chunk_header(conn, 2, conn, 0));
            file.extend_from_slice(b"hi");
        }
        let conn = |reply: &[u8], end| Conn { to_send: 2, sent: 2, reply: reply.to_vec(), end, send_error: None };
        let played = Played {
            conns: vec![conn(b"ac", End::Open), conn(b"b\n", End::ResetByServer), Conn::default()],
            transcript: vec![(0, b"a".to_vec()), (1, b"b\n".to_vec()), (0, b"c".to_vec())],
            timed_out: true,
            blocked: None,
        };
        let mut out = Vec::new();
        let hang = several_connections(&mut out, &played, &comux::parse(&file).unwrap(), 0.5, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "comux file: 3 connections, 2 chunks\n\
             --- connection 0 ---\na\n\
             --- connection 1 ---\nb\n\
             --- connection 0 ---\nc\n\
             --- summary ---\n\
             connection 0: sent 2 of 2 bytes, received 2 bytes, still open after 0.5 s without data (a hang?)\n\
             connection 1: sent 2 of 2 bytes, received 2 bytes, reset by the server\n"
        );
        assert_eq!(
            hang.as_deref(),
            Some("Nothing received for 0.5 s: the server is still holding connection 0 open (a hang?).")
        );
    }
}
