#!/usr/bin/env python3
r"""Clients that reproduce the planted bugs of the servers in tests/servers over real TCP.

    python3 tests/servers/clients.py SCENARIO PORT [options]

Every scenario talks to 127.0.0.1:PORT, prints what it saw, and ends with a line
`=> ok: ...` (exit status 0: everything the client could see was right) or
`=> MISBEHAVED: ...` (exit status 1).  Exit status 2: usage error, the first connection was
refused, or the scenario does not apply (`=> n/a: ...`).  A bug the client cannot see (an ASan or
LeakSanitizer report) shows on the server's stderr only.

Scenarios:
  polite               one connection: the whole request in one send() and the half-close
                       (shutdown(SHUT_WR)) in the same TCP segment (MSG_MORE), the reply read
                       to EOF.
  kept-open            like curl: the whole request in one send(), the side kept open, the reply
                       read (by Content-Length, else to EOF), only then close().
  bytewise             the request one byte per send() (TCP_NODELAY, 1 ms apart), the side kept
                       open, the reply read as kept-open does (the grading test's way).
  early-disco-crlf     -n times: `GET / HTTP/1.1\r\nHost: ...\r\n` (no blank line), close();
  early-disco-none     -n times: `GET / HTTP/1.1` (no CRLF at all), close();
                       with --pid, count /proc/PID/fd before and after (a growth of -n/2 or
                       more is a leak).
  rst-after-request    -n times (default 3): a whole request, then SO_LINGER {1, 0} and close():
                       a RST, nothing read.  A holder connection that sent half a request first
                       keeps an iterative server busy until the RST is in (else it is a race);
                       then the holder completes its request and reads its reply.
  stall-and-serve      connection 1 sends `GET / HTTP/1.1\r\nHost: ...\r\n` and stalls (kept
                       open); connection 2, curl-like, must be served within --timeout seconds.
  long-target-80k      a polite GET whose target is 80,000 bytes long: some reply is expected
                       (404, 414, 431; a server that answers before it has read everything may
                       reset the connection after its reply, which counts as answered), but not
                       a connection closed with no reply.
  two-conn-session-uaf A: POST /login (user=alice) -> sid; B: GET / with the cookie (keep-alive);
                       A: POST /logout with the cookie; B: GET /private with the cookie on the
                       same connection: must be 403, not `hello ...`, and not a dead server.
All but polite, kept-open and stall-and-serve end with a curl-like probe (GET /, as kept-open):
is the server still serving?

Options: -n COUNT, --pid PID, --path PATH (polite, kept-open, bytewise), -H 'Name: value'
(an extra header line; repeatable), --timeout SECONDS (each read; default 5).
"""
import argparse
import os
import socket
import struct
import sys
import time

HOST = "127.0.0.1"


class Refused(Exception):
    pass


def connect(args):
    try:
        return socket.create_connection((HOST, args.port), timeout=args.timeout)
    except ConnectionRefusedError as e:
        raise Refused(str(e))


def request(args, path="/", method="GET", headers=(), body=b""):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{args.port}", *headers, *args.header]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def recv(s):
    """One recv(): (bytes, None), or (b"", how it ended: 'eof', 'reset', 'timeout', ...)."""
    try:
        b = s.recv(65536)
    except socket.timeout:
        return b"", "timeout"
    except ConnectionResetError:
        return b"", "reset"
    except OSError as e:
        return b"", e.strerror or str(e)
    return (b, None) if b else (b"", "eof")


def read_to_eof(s):
    """Everything until EOF; and how it ended: 'eof', 'reset', 'timeout', ..."""
    data = b""
    while True:
        b, end = recv(s)
        if end:
            return data, end
        data += b


def read_reply(s):
    """One reply: up to the blank line, then Content-Length bytes (or to EOF without one).
    Returns (status line or None, headers as lowercase dict, body, how it ended)."""
    data = b""
    while b"\r\n\r\n" not in data:
        b, end = recv(s)
        if end:
            return None, {}, data, end
        data += b
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" not in headers:
        more, end = read_to_eof(s)
        return lines[0], headers, body + more, "complete" if end == "eof" else end
    want = int(headers["content-length"])
    while len(body) < want:
        b, end = recv(s)
        if end:
            return lines[0], headers, body, f"short body ({end})"
        body += b
    return lines[0], headers, body, "complete"


def send(s, data, flags=0):
    """sendall(); None, or what went wrong."""
    try:
        s.sendall(data, flags)
    except OSError as e:
        return e.strerror or str(e)
    return None


def status_of(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0].decode("latin-1")
    return (status if sep and status.startswith("HTTP/") else None), body


def polite_raw(args, path="/"):
    """One polite exchange: (status line or None, body, how it ended, send error or None)."""
    try:
        s = connect(args)
    except Refused as e:
        return None, b"", f"connection refused ({e})", None
    with s:
        # MSG_MORE holds the request back until shutdown() sends it with the FIN, in one
        # segment: the server finds the request and the EOF together, every time (as under the
        # fuzzer's preload), not only when it happens to read late.
        err = send(s, request(args, path), socket.MSG_MORE)
        if err is None:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                err = e.strerror or str(e)
        data, end = read_to_eof(s)      # also after a failed send: the reply may be in
    status, body = status_of(data)
    return status, body, end, err


def polite(args, path="/"):
    """(served?, description) of one polite exchange."""
    status, body, end, err = polite_raw(args, path)
    what = f"{status!r}, {len(body)} body bytes, then {end}" if status else f"no reply ({end})"
    if err:
        what += f"; sending failed: {err}"
    return status is not None and end == "eof" and err is None, what


def kept_open_exchange(s, data):
    err = send(s, data)
    status, headers, body, end = read_reply(s)
    if status is None:
        return False, f"no reply ({end}; {len(body)} bytes)" + (f"; sending: {err}" if err else "")
    return end == "complete", f"{status!r}, {len(body)} body bytes, {end}"


def kept_open(args, path="/"):
    """(served?, description) of one curl-like exchange: also the liveness probe."""
    try:
        s = connect(args)
    except Refused as e:
        return False, f"connection refused ({e})"
    with s:
        return kept_open_exchange(s, request(args, path))


def probe(args):
    alive, what = kept_open(args)
    print(f"then a curl-like GET /: {what}")
    return alive


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def verdict(bad, why):
    print(("=> MISBEHAVED: " if bad else "=> ok: ") + why)
    return 1 if bad else 0


def sc_polite(args):
    ok, what = polite(args, args.path)
    print(f"polite GET {args.path[:60]}: {what}")
    return verdict(not ok, "served" if ok else "not served")


def sc_kept_open(args):
    ok, what = kept_open(args, args.path)
    print(f"kept-open GET {args.path[:60]}: {what}")
    return verdict(not ok, "served" if ok else "not served")


def sc_bytewise(args):
    with connect(args) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = None
        for b in request(args, args.path):
            err = send(s, bytes([b]))
            if err:
                break
            time.sleep(0.001)
        ok, what = kept_open_exchange(s, b"")
        if err:
            ok, what = False, f"{what}; sending failed: {err}"
    print(f"bytewise GET {args.path[:60]}: {what}")
    alive = probe(args)
    return verdict(not (ok and alive), "served" if ok and alive else "not served")


def sc_early_disco(args, partial):
    before = fd_count(args.pid) if args.pid else None
    done = 0
    try:
        for _ in range(args.n):
            with connect(args) as s:
                send(s, partial)
            done += 1
    except Refused:
        pass
    time.sleep(0.5)
    after = fd_count(args.pid) if args.pid else None
    print(f"{done} connections sent {partial!r} and closed")
    why = []
    if done < args.n:
        why.append(f"connection {done + 1} was refused")
    if args.pid:
        print(f"server {args.pid}: {before} descriptors before, {after} after")
        if after is None:
            why.append("the server is gone")
        elif after - before >= max(1, args.n // 2):
            why.append(f"{after - before} descriptors more")
    if not probe(args):
        why.append("the probe was not served")
    return verdict(bool(why), "; ".join(why) or "no leak seen, still serving")


def sc_rst_after_request(args):
    for i in range(args.n):
        # A holder connection first sends half a request: an iterative server now waits for the
        # rest, so the reset below is in before it reads (else the server may write its whole
        # reply before the RST arrives, a race it wins a third of the time on loopback).
        holder = connect(args)
        send(holder, f"GET / HTTP/1.1\r\nHost: {HOST}:{args.port}\r\n".encode())
        time.sleep(0.1)
        try:
            with connect(args) as s:
                send(s, request(args))
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except Refused:
            holder.close()
            return verdict(True, f"the server was gone before reset {i + 1} (after the holder's "
                           "half request)")
        time.sleep(0.1)
        ok, what = kept_open_exchange(holder, b"\r\n")
        holder.close()
        print(f"{i + 1}: a whole request, then reset (SO_LINGER {{1, 0}}) unread; "
              f"the holder connection got: {what}")
        time.sleep(0.3)
        if not probe(args):
            return verdict(True, f"the server no longer serves after reset {i + 1}")
    return verdict(False, "still serving")


def sc_stall_and_serve(args):
    staller = connect(args)
    send(staller, f"GET / HTTP/1.1\r\nHost: {HOST}:{args.port}\r\n".encode())
    time.sleep(0.2)
    print("connection 1 sent a request line and Host, and stalls (kept open)")
    t = time.monotonic()
    ok, what = kept_open(args)
    print(f"connection 2, curl-like GET / (within {args.timeout} s): {what} "
          f"after {time.monotonic() - t:.2f} s")
    staller.close()
    return verdict(not ok, "connection 2 served" if ok
                   else "connection 2 not served while connection 1 stalls")


def sc_long_target(args):
    target = "/" + "a" * 79999
    status, body, end, err = polite_raw(args, target)
    print(f"polite GET /aaa... ({len(target)} bytes): " +
          (f"{status!r}, {len(body)} body bytes, then {end}" if status else f"no reply ({end})") +
          (f"; sending failed: {err}" if err else ""))
    alive = probe(args)
    why = ([] if status else ["no reply to the long target"]) + \
          ([] if alive else ["the probe was not served"])
    return verdict(bool(why), "; ".join(why) or "answered, still serving")


def sc_session_uaf(args):
    def exchange(s, name, req):
        err = send(s, req)
        status, headers, body, end = read_reply(s)
        print(f"{name}: {status!r} {body[:60]!r} ({end})" + (f"; sending: {err}" if err else ""))
        return status, headers, body
    a, b = connect(args), connect(args)
    status, headers, _ = exchange(a, "A  POST /login user=alice", request(
        args, "/login", "POST", body=b"user=alice"))
    cookie = headers.get("set-cookie", "").split(";")[0]
    if not cookie.startswith("sid="):
        print("=> n/a: no `Set-Cookie: sid=...` in the login reply")
        return 2
    exchange(b, f"B  GET / with {cookie}", request(args, "/", headers=[f"Cookie: {cookie}"]))
    exchange(a, "A  POST /logout", request(args, "/logout", "POST", headers=[f"Cookie: {cookie}"]))
    status, _, body = exchange(b, "B  GET /private (same connection)",
                               request(args, "/private", headers=[f"Cookie: {cookie}"]))
    a.close()
    b.close()
    alive = probe(args)
    if status is None:
        return verdict(True, "no reply to B's GET /private (the server died?)")
    if " 200 " in status + " ":
        return verdict(True, f"B was served a session that A had logged out: {body[:60]!r}")
    return verdict(not alive, "B refused after the logout" +
                   ("" if alive else "; the probe was not served"))


SCENARIOS = {
    "polite": sc_polite,
    "kept-open": sc_kept_open,
    "bytewise": sc_bytewise,
    "early-disco-crlf": lambda a: sc_early_disco(
        a, f"GET / HTTP/1.1\r\nHost: {HOST}:{a.port}\r\n".encode()),
    "early-disco-none": lambda a: sc_early_disco(a, b"GET / HTTP/1.1"),
    "rst-after-request": sc_rst_after_request,
    "stall-and-serve": sc_stall_and_serve,
    "long-target-80k": sc_long_target,
    "two-conn-session-uaf": sc_session_uaf,
}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[2:]))
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("port", type=int)
    p.add_argument("-n", type=int, default=None, help="repetitions (early-disco-*: 100, "
                   "rst-after-request: 3)")
    p.add_argument("--pid", type=int, help="the server's pid, to count its descriptors")
    p.add_argument("--path", default="/", help="the target (polite, kept-open, bytewise)")
    p.add_argument("-H", "--header", action="append", default=[], help="an extra header line")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per read (default 5)")
    args = p.parse_args()
    if args.n is None:
        args.n = 100 if args.scenario.startswith("early-disco") else 3
    try:
        return SCENARIOS[args.scenario](args)
    except Refused as e:
        print(f"cannot connect to {HOST}:{args.port}: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
