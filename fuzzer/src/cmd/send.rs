//! `fuzzer send ADDR PORT < FILE`: replay one input against a listening server.
use std::io::{self, ErrorKind, IsTerminal, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use crate::hex::{paint, MAGENTA, RED, YELLOW};

const EXIT_HANG: u8 = 3;

#[derive(clap::Args)]
#[command(after_help = "\
Exit status:
  0  the server closed the connection (with or without a reply)
  1  error (e.g. connection refused, host not found)
  3  the server kept the connection open without sending anything for --timeout seconds (a hang?)")]
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
    let timeout = Duration::from_secs_f64(args.timeout);
    println!("Reading from STDIN and sending to server...");
    let mut input = Vec::new();
    io::stdin().read_to_end(&mut input).context("could not read stdin")?;
    let total = input.len();

    let mut stream = connect(&args.addr, args.port, timeout)?;
    stream.set_read_timeout(Some(timeout))?;

    // Write from a thread while this one reads: a server that answers before
    // reading the whole request must not deadlock against us.
    let sent = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    {
        let mut writer = stream.try_clone()?;
        let sent = Arc::clone(&sent);
        thread::spawn(move || {
            let result = write_counted(&mut writer, &input, &sent).and_then(|()| writer.shutdown(Shutdown::Write));
            let _ = done_tx.send(result);
        });
    }

    let mut reply = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut hang, mut reset) = (false, false);
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                hang = true;
                break;
            }
            // Student servers often close() with unread input, which the kernel turns into a RST.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                reset = true;
                break;
            }
            Err(e) => return Err(e).context("could not read the reply"),
        }
    }

    // After the server stopped talking, the writer may still be blocked if the
    // server half-closed but never reads: that is a hang too.
    let send_result = if hang { None } else { done_rx.recv_timeout(timeout).ok() };
    let writer_done = send_result.is_some();
    let sent = sent.load(Ordering::SeqCst);

    let mut out = io::stdout().lock();
    writeln!(out, "{} Sent bytes: {}", paint("---------->", MAGENTA, color), paint(&sent.to_string(), YELLOW, color))?;
    match send_result {
        Some(Err(e))
            if matches!(
                e.kind(),
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) =>
        {
            let msg = format!("Server closed the connection after {sent} of {total} bytes were sent.");
            writeln!(out, "{}", paint(&msg, RED, color))?;
        }
        Some(Err(e)) => return Err(e).context("could not send the input"),
        _ => {}
    }
    if !reply.is_empty() {
        writeln!(
            out,
            "{} Received bytes: {}",
            paint("<----------", MAGENTA, color),
            paint(&reply.len().to_string(), YELLOW, color)
        )?;
        out.write_all(&reply)?;
        if !reply.ends_with(b"\n") {
            writeln!(out)?;
        }
    } else if !hang && writer_done {
        writeln!(out, "{}", paint("Server closed the connection without replying.", RED, color))?;
    }
    if reset {
        let msg = format!("Connection reset by server after {} bytes.", reply.len());
        writeln!(out, "{}", paint(&msg, RED, color))?;
    }
    out.flush()?;

    if hang {
        eprintln!("No reply for {} s: the server is still holding the connection open (a hang?).", args.timeout);
        return Ok(ExitCode::from(EXIT_HANG));
    }
    if !writer_done {
        eprintln!(
            "The server stopped reading after {sent} of {total} bytes but did not close the connection within {} s (a hang?).",
            args.timeout
        );
        return Ok(ExitCode::from(EXIT_HANG));
    }
    Ok(ExitCode::SUCCESS)
}

/// `write_all`, but keeps count so a server closing early can be reported precisely.
fn write_counted(w: &mut TcpStream, mut data: &[u8], sent: &AtomicUsize) -> io::Result<()> {
    while !data.is_empty() {
        match w.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                sent.fetch_add(n, Ordering::SeqCst);
                data = &data[n..];
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Try every resolved address (e.g. `localhost` may be ::1 and 127.0.0.1).
fn connect(addr: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    let host = addr.trim_start_matches('[').trim_end_matches(']');
    let target = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let addrs = (host, port).to_socket_addrs().with_context(|| format!("could not resolve {host}"))?;
    let mut last_err = None;
    for sa in addrs {
        match TcpStream::connect_timeout(&sa, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last_err = Some(e),
        }
    }
    match last_err {
        Some(e) if e.kind() == ErrorKind::ConnectionRefused => Err(anyhow!(
            "Could not connect to {target}: connection refused. Is the server running and listening on port {port}?"
        )),
        Some(e) => Err(e).with_context(|| format!("Could not connect to {target}")),
        None => Err(anyhow!("could not resolve {host}: no addresses")),
    }
}
