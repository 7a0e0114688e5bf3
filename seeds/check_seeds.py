#!/usr/bin/env python3
"""Independent sanity check of seeds/requests/*.req, *.comux and seeds/http.dict.

For each .req file: it must parse as one or more complete HTTP requests
(request line "METHOD TARGET VERSION", CRLF-terminated "Name: value" headers,
an empty line, then exactly Content-Length body bytes, or a well-formed body in
chunked transfer coding where Transfer-Encoding says so), with nothing left
over; the last request must be HTTP/1.0 or carry "Connection: close".
Files must be < 100 KB, except uri_80kb.req.

For each .comux file (several connections, contract/src/comux.rs): the header
and every chunk are whole, with nothing after the last; chunks name declared
connections, every connection has one, sched counts 0, 1, 2, ...; flags are
known, and KEEP_OPEN is only on a connection's last chunk.  Each connection's
bytes follow the .req rules, except that a connection kept open need not ask
to close, and one kept open or in an early_disco_* file may stop mid-request.

For http.dict: every non-blank, non-comment line must be name="value"
(optionally name@N="value") where the value uses only printable ASCII and
the escapes \\\\, \\" and \\xNN.

Exit status 0 when everything passes.
"""

import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REQ_DIR = os.path.join(HERE, "requests")
DICT_PATH = os.path.join(HERE, "http.dict")
LIMIT = 100 * 1024
BIG_OK = {"uri_80kb.req"}


def parse_requests(data, partial_ok=False):
    """Return list of (method, target, version, headers, body) or raise ValueError.
    With partial_ok, bytes after the last complete request are a request cut short."""
    out, pos = [], 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0 and partial_ok:
            return out
        if end < 0:
            raise ValueError("no end of header block at offset %d" % pos)
        head = data[pos:end]
        if b"\n" in head.replace(b"\r\n", b"") or b"\r" in head.replace(b"\r\n", b""):
            raise ValueError("bare CR or LF in header block at offset %d" % pos)
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not all(parts):
            raise ValueError("bad request line %r" % lines[0][:60])
        method, target, version = parts
        if version not in (b"HTTP/1.0", b"HTTP/1.1"):
            raise ValueError("bad version %r" % version)
        headers = []
        for ln in lines[1:]:
            m = re.match(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+): (.*)$", ln)
            if not m:
                raise ValueError("bad header line %r" % ln[:60])
            headers.append((m.group(1).lower(), m.group(2)))
        pos = end + 4
        cls = [v for k, v in headers if k == b"content-length"]
        if len(cls) > 1:
            raise ValueError("several Content-Length headers")
        if [v for k, v in headers if k == b"transfer-encoding"] == [b"chunked"]:
            if cls:
                raise ValueError("Content-Length beside Transfer-Encoding: chunked")
            n = chunked_length(data, pos)
            if n is None and partial_ok:
                return out
            if n is None:
                raise ValueError("chunked body cut short or malformed at offset %d" % pos)
            out.append((method, target, version, headers, data[pos:pos + n]))
            pos += n
            continue
        n = int(cls[0]) if cls else 0
        if not cls and method == b"POST":
            raise ValueError("POST without Content-Length or a chunked body")
        if pos + n > len(data) and partial_ok:
            return out
        if pos + n > len(data):
            raise ValueError("body shorter than Content-Length %d" % n)
        body = data[pos:pos + n]
        pos += n
        out.append((method, target, version, headers, body))
    if not out and not partial_ok:
        raise ValueError("empty file")
    return out


def chunked_length(data, pos):
    """Length of the well-formed chunked body at data[pos:] (hex sizes, CRLF after each
    chunk, a last chunk of size 0, no trailers), or None."""
    start = pos
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0 or not re.fullmatch(rb"[0-9a-f]+", data[pos:end]):
            return None
        size = int(data[pos:end], 16)
        pos = end + 2
        if size == 0:
            return pos + 2 - start if data[pos:pos + 2] == b"\r\n" else None
        if data[pos + size:pos + size + 2] != b"\r\n":
            return None
        pos += size + 2


def check_connection(name, data, must_close, partial_ok):
    """Errors in one connection's bytes, and its number of complete requests."""
    try:
        reqs = parse_requests(data, partial_ok)
    except ValueError as e:
        return ["%s: %s" % (name, e)], 0
    errors = []
    for i, (m, t, v, h, b) in enumerate(reqs):
        conn = [val.lower() for k, val in h if k == b"connection"]
        last = i == len(reqs) - 1
        if last and must_close and v != b"HTTP/1.0" and b"close" not in conn:
            errors.append("%s: last request is HTTP/1.1 without Connection: close" % name)
        if not last and b"close" in conn:
            errors.append("%s: request %d closes before the end" % (name, i + 1))
        if not any(k == b"host" for k, _ in h):
            errors.append("%s: request %d has no Host" % (name, i + 1))
    return errors, len(reqs)


COMUX_FLAGS = {"AWAIT": 0x1, "KEEP_OPEN": 0x2, "BYTEWISE": 0x4, "RESET": 0x8}


def parse_comux(data):
    """Return (num_conns, [(conn, flags, data)] in play order) or raise ValueError."""
    if len(data) < 20 or data[:8] != b"comux!!!":
        raise ValueError("no comux header")
    version, num_conns, num_chunks = struct.unpack_from("<III", data, 8)
    if version != 0 or not 1 <= num_conns <= 64:
        raise ValueError("version %d, %d connections" % (version, num_conns))
    chunks, pos = [], 20
    for k in range(num_chunks):
        if pos + 20 > len(data):
            raise ValueError("chunk %d: header cut short" % k)
        conn, length, sched, flags = struct.unpack_from("<IQII", data, pos)
        pos += 20
        if conn >= num_conns or sched != k or flags & ~0xF or pos + length > len(data):
            raise ValueError("chunk %d: conn %d, sched %d, flags %#x, %d bytes" % (k, conn, sched, flags, length))
        chunks.append((conn, flags, data[pos:pos + length]))
        pos += length
    if pos != len(data):
        raise ValueError("%d bytes after the last chunk" % (len(data) - pos))
    return num_conns, chunks


def check_comux(name, data):
    """Errors in one .comux file, and its number of complete requests."""
    try:
        num_conns, chunks = parse_comux(data)
    except ValueError as e:
        return ["%s: %s" % (name, e)], 0
    errors, total = [], 0
    for c in range(num_conns):
        own = [(flags, d) for conn, flags, d in chunks if conn == c]
        if not own:
            errors.append("%s: connection %d has no chunk" % (name, c))
            continue
        if any(flags & COMUX_FLAGS["KEEP_OPEN"] for flags, _ in own[:-1]):
            errors.append("%s: connection %d: KEEP_OPEN before its last chunk" % (name, c))
        kept_open = bool(own[-1][0] & COMUX_FLAGS["KEEP_OPEN"])
        partial_ok = kept_open or name.startswith("early_disco_")
        e, n = check_connection("%s conn %d" % (name, c), b"".join(d for _, d in own),
                                not kept_open, partial_ok)
        errors += e
        total += n
    return errors, total


def check_requests():
    errors, stats = [], {"files": 0, "bytes": 0, "requests": 0, "max": (0, "")}
    for name in sorted(os.listdir(REQ_DIR)):
        path = os.path.join(REQ_DIR, name)
        with open(path, "rb") as fh:
            data = fh.read()
        stats["files"] += 1
        stats["bytes"] += len(data)
        if len(data) > stats["max"][0]:
            stats["max"] = (len(data), name)
        if not name.endswith((".req", ".comux")):
            errors.append("%s: not a .req or .comux file" % name)
            continue
        if len(data) >= LIMIT and name not in BIG_OK:
            errors.append("%s: %d bytes >= 100 KB" % (name, len(data)))
        if name.endswith(".comux"):
            e, n = check_comux(name, data)
            errors += e
            stats["requests"] += n
            continue
        e, n = check_connection(name, data, True, False)
        errors += e
        stats["requests"] += n
        m = re.match(r"^(.*?)(_multi(\d)|_swapheader(\d+))?\.req$", name)
        if m.group(3) and not e:
            want = {"1": 2, "2": 4}[m.group(3)]
            if n != want:
                errors.append("%s: %d requests, expected %d" % (name, n, want))
    return errors, stats


DICT_LINE = re.compile(r'^([A-Za-z0-9_]+)(@[0-9]+)?="((?:[\x20-\x21\x23-\x5b\x5d-\x7e]|\\\\|\\"|\\x[0-9A-Fa-f]{2})*)"$')


def afl_decode(v):
    return re.sub(rb'\\(x[0-9A-Fa-f]{2}|\\|")',
                  lambda m: bytes([int(m.group(1)[1:], 16)]) if m.group(1)[:1] == b"x"
                  else m.group(1), v.encode("latin-1"))


def check_dict():
    errors, n, names, values = [], 0, set(), {}
    with open(DICT_PATH, "rb") as fh:
        raw = fh.read()
    for lineno, ln in enumerate(raw.decode("latin-1").split("\n"), 1):
        s = ln.strip()
        if not s or s.startswith("#"):
            continue
        m = DICT_LINE.match(s)
        if not m:
            errors.append("http.dict:%d: invalid line %r" % (lineno, ln))
            continue
        if not m.group(3):
            errors.append("http.dict:%d: empty value" % lineno)
        if m.group(1) in names:
            errors.append("http.dict:%d: duplicate name %s" % (lineno, m.group(1)))
        names.add(m.group(1))
        val = afl_decode(m.group(3))
        if val in values:
            errors.append("http.dict:%d: same value as %s (AFL drops duplicates)"
                          % (lineno, values[val]))
        values[val] = m.group(1)
        n += 1
    return errors, n


def main():
    rerr, st = check_requests()
    derr, nd = check_dict()
    print("requests: %d files, %d bytes total, %d HTTP requests, largest %s (%d bytes)"
          % (st["files"], st["bytes"], st["requests"], st["max"][1], st["max"][0]))
    print("dictionary: %d entries" % nd)
    for e in rerr + derr:
        print("FAIL", e)
    print("ALL CHECKS PASSED" if not (rerr or derr) else "%d problem(s)" % len(rerr + derr))
    return 1 if (rerr or derr) else 0


if __name__ == "__main__":
    sys.exit(main())
