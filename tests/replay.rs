//! End-to-end tests of `fuzzer send` and `fuzzer hex` against tiny in-process
//! TCP servers on loopback, and of a comux file against the sample server.
use crate::util::{free_port, pserv, send_to, skip, www};
use contract::comux;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fuzzer");
const REPLY: &[u8] = b"HTTP/1.0 200 OK\r\n\r\nhello";
const BANNER: &str = "Reading from STDIN and sending to server...\n";

/// Accept one connection in a thread and hand it to `handle`.
fn serve<T: Send + 'static>(
    listener: TcpListener,
    handle: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> JoinHandle<T> {
    thread::spawn(move || handle(listener.accept().unwrap().0))
}

fn local() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    (l, port)
}

/// Read the whole request, answer, close: the well-behaved server.
fn echo_server(mut s: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    s.write_all(REPLY).unwrap();
    got
}

/// Run `fuzzer send ARGS` with `input` on stdin.
fn send(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .arg("send")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Feed stdin from a thread so a large input cannot block us against a full stdout pipe.
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input); // the child may exit early (e.g. refused)
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn replied(sent: usize) -> String {
    format!(
        "{BANNER}----------> Sent bytes: {sent}\n<---------- Received bytes: {}\n{}\n",
        REPLY.len(),
        String::from_utf8_lossy(REPLY)
    )
}

#[test]
fn binary_input_is_sent_verbatim() {
    let (l, port) = local();
    let server = serve(l, echo_server);
    let input = b"GET /\x00a\xff HTTP/1.0\r\n\r\n\x00\x01";
    let out = send(&["127.0.0.1", &port], input);
    assert_eq!(stdout(&out), replied(input.len()));
    assert!(!out.stdout.contains(&0x1b), "no colors when stdout is not a terminal");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.join().unwrap(), input);
}

#[test]
fn large_input_and_early_large_reply_do_not_deadlock() {
    // The server writes a reply bigger than the socket buffers before reading
    // the rest: a client that sends everything before reading would deadlock.
    // 8 MiB each way, because Linux loopback buffers can absorb ~2 MiB
    // (tcp_rmem max 32 MiB), which would let a sequential client pass with 1 MiB.
    let (l, port) = local();
    let reply: Vec<u8> = [b"HTTP/1.0 200 OK\r\n\r\n".as_slice(), &vec![b'x'; 8 << 20]].concat();
    let server = serve(l, {
        let reply = reply.clone();
        move |mut s| {
            let mut got = vec![0; 1024];
            s.read_exact(&mut got).unwrap();
            s.write_all(&reply).unwrap();
            s.read_to_end(&mut got).unwrap();
            got
        }
    });
    let input: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    let out = send(&["127.0.0.1", &port], &input);
    assert!(start.elapsed() < Duration::from_secs(4));
    let head =
        format!("{BANNER}----------> Sent bytes: {}\n<---------- Received bytes: {}\n", input.len(), reply.len());
    let expected = [head.as_bytes(), &reply, b"\n"].concat();
    assert!(out.stdout == expected, "stdout differs: {}", &stdout(&out)[..300]);
    assert_eq!(out.status.code(), Some(0));
    assert!(server.join().unwrap() == input);
}

#[test]
fn close_without_reply() {
    let (l, port) = local();
    let server = serve(l, |mut s| s.read_to_end(&mut Vec::new()).unwrap());
    let out = send(&["127.0.0.1", &port], b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(
        stdout(&out),
        format!("{BANNER}----------> Sent bytes: 18\nServer closed the connection without replying.\n")
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.join().unwrap(), 18);
}

#[test]
fn server_closing_early_is_reported() {
    // Closing with unread input makes the kernel send a RST; the exact
    // interleaving (send error vs. read reset) depends on buffer sizes.
    let (l, port) = local();
    serve(l, |mut s| s.read_exact(&mut [0; 10]).unwrap());
    let out = send(&["127.0.0.1", &port], &vec![b'a'; 8 << 20]);
    let text = stdout(&out);
    assert!(
        text.contains(" bytes were sent.\n") || text.contains("Connection reset by server after 0 bytes.\n"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn hanging_server_times_out_with_status_3() {
    let (l, port) = local();
    // Keep the connection open well past the client's timeout.
    serve(l, |mut s| {
        s.read_to_end(&mut Vec::new()).unwrap();
        thread::sleep(Duration::from_secs(5));
    });
    let start = Instant::now();
    let out = send(&["--timeout", "0.5", "127.0.0.1", &port], b"GET / HTTP/1.0\r\n\r\n");
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), format!("{BANNER}----------> Sent bytes: 18\n"));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "No reply for 0.5 s: the server is still holding the connection open (a hang?).\n"
    );
}

#[test]
fn connection_refused_is_a_plain_error() {
    let (l, port) = local();
    drop(l); // nothing listens on this port any more
    let out = send(&["127.0.0.1", &port], b"x");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: Could not connect to 127.0.0.1:{port}: connection refused. \
             Is the server running and listening on port {port}?\n"
        )
    );
}

#[test]
fn host_name_tries_each_address() {
    // `localhost` may resolve to ::1 first; the server only listens on IPv4.
    let (l, port) = local();
    let server = serve(l, echo_server);
    let out = send(&["localhost", &port], b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(stdout(&out), replied(18));
    assert_eq!(out.status.code(), Some(0));
    server.join().unwrap();
}

#[test]
fn ipv6_loopback() {
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        skip("cannot bind [::1]: no IPv6 loopback on this machine", None);
        return;
    };
    let port = l.local_addr().unwrap().port().to_string();
    let server = serve(l, echo_server);
    let out = send(&["::1", &port], b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(stdout(&out), replied(18));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.join().unwrap(), b"GET / HTTP/1.0\r\n\r\n");
}

#[test]
fn hex_dump_of_a_file() {
    let path = format!("{}/replay-hex-{}.bin", env!("CARGO_TARGET_TMPDIR"), std::process::id());
    std::fs::write(&path, b"GET / HTTP/1.0\r\nHost: a\r\n\r\n\x00\xff\x7f").unwrap();
    let out = Command::new(BIN).args(["hex", &path]).output().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        stdout(&out),
        format!(
            "00000000  47 45 54 20 2f 20 48 54 54 50 2f 31 2e 30 0d 0a 48 6f 73 74 3a 20 61 0d  GET / HTTP/1.0..Host: a.\n\
             00000018  0a 0d 0a 00 ff 7f{}  ......\n",
            " ".repeat(54)
        )
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn hex_missing_file_names_the_path() {
    let out = Command::new(BIN).args(["hex", "/nonexistent/crash-123"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains("/nonexistent/crash-123"), "{err}");
}

/// A comux file of `(conn, sched, flags, data)` chunks, written with the contract's headers.
fn comux_file(num_conns: u32, chunks: &[(u32, u32, u32, &[u8])]) -> Vec<u8> {
    let mut file = comux::header(num_conns, chunks.len() as u32).to_vec();
    for &(conn, sched, flags, data) in chunks {
        file.extend_from_slice(&comux::chunk_header(conn, data.len() as u64, sched, flags));
        file.extend_from_slice(data);
    }
    file
}

#[test]
fn comux_file_replays_each_connection_and_prints_its_reply_under_its_number() {
    // Connection 1 goes first (sched 0) and is awaited: its whole reply comes before
    // connection 0 is even opened, so the order of the output is fixed.
    let input = comux_file(
        2,
        &[(0, 1, 0, b"GET /index.html HTTP/1.0\r\n\r\n"), (1, 0, comux::AWAIT, b"GET /nope HTTP/1.0\r\n\r\n")],
    );
    let port = free_port();
    let mut server = Command::new(pserv());
    server.args(["-p", &port.to_string(), "-R"]).arg(www()).args(["-s", "-m", "thread"]);
    let (send, _, _) = send_to(&mut server, port, &input, Duration::ZERO);
    assert_eq!(send.code(), Some(0), "{send:?}");
    let text = send.stdout_text();
    let head = format!("{BANNER}comux file: 2 connections, 2 chunks\n--- connection 1 ---\nHTTP/1.0 404 Not Found\r\n");
    assert!(text.starts_with(&head), "{text}");
    let (replies, summary) = text.split_once("--- summary ---\n").expect("a summary");
    let second = replies.find("--- connection 0 ---\nHTTP/1.0 200 OK\r\n").expect("connection 0's reply");
    assert!(replies[second..].contains("<title>pserv sample</title>"), "{text}");
    assert_eq!(replies.matches("--- connection ").count(), 2, "one section per connection: {text}");
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 2, "{summary}");
    assert!(lines[0].starts_with("connection 0: sent 28 of 28 bytes, received "), "{summary}");
    assert!(lines[1].starts_with("connection 1: sent 22 of 22 bytes, received "), "{summary}");
    assert!(lines.iter().all(|l| l.ends_with(" bytes, closed by the server")), "{summary}");
}

#[test]
fn hex_dump_of_a_comux_file_chunk_by_chunk() {
    let path = format!("{}/replay-hex-comux-{}.bin", env!("CARGO_TARGET_TMPDIR"), std::process::id());
    let flags = comux::KEEP_OPEN | comux::BYTEWISE;
    std::fs::write(&path, comux_file(2, &[(1, 3, flags, b"GET / HTTP/1.0\r\n\r\n"), (0, 0, comux::RESET, b"\xff")]))
        .unwrap();
    let out = Command::new(BIN).args(["hex", &path]).output().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        stdout(&out),
        format!(
            "comux file: 2 connections, 2 chunks, played in the order 1 0\n\
             chunk 0: connection 1, sched 3, flags keep-open,bytewise, 18 bytes\n\
             00000000  47 45 54 20 2f 20 48 54 54 50 2f 31 2e 30 0d 0a 0d 0a{}  GET / HTTP/1.0....\n\
             chunk 1: connection 0, sched 0, flags reset, 1 byte\n\
             00000000  ff{}  .\n",
            " ".repeat(18),
            " ".repeat(69)
        )
    );
    assert_eq!(out.status.code(), Some(0));
}
