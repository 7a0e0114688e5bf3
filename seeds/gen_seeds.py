#!/usr/bin/env python3
"""Generate the pserv-fuzz seed corpus (seeds/requests/*.req, *.comux) and dictionary (seeds/http.dict).

Every .req file holds exactly the bytes a client sends on one TCP connection:
one or more HTTP requests with CRLF line endings, each with a Content-Length
that matches its body.  The last request in every file is either HTTP/1.0 or
carries "Connection: close", so a correct server closes the connection after
answering it; every earlier request carries "Connection: keep-alive".

Every .comux file holds several connections (the comux format of
contract/src/comux.rs): the grading tests' multi-connection scenarios.

Output is deterministic (no clocks, no randomness).  Usage:

    python3 gen_seeds.py            # (re)write requests/ and http.dict
    python3 gen_seeds.py --check    # exit 1 if the files on disk differ
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REQ_DIR = os.path.join(HERE, "requests")
DICT_PATH = os.path.join(HERE, "http.dict")

CRLF = "\r\n"

# Common header values.
HOST = ("Host", "localhost")
UA = ("User-Agent", "pserv-fuzz-seed/1.0")
ACCEPT = ("Accept", "*/*")
IDENTITY = ("Accept-Encoding", "identity")
JSON_CT = ("Content-Type", "application/json")


# --------------------------------------------------------------------------
# JWT-shaped tokens: base64url(header) . base64url(payload) . hex(signature).
# Values are plausible, not valid for any particular server key.
# --------------------------------------------------------------------------

def _b64url(obj):
    raw = json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_token(payload, key=b"pserv-fuzz-seed-key"):
    head = _b64url({"alg": "HS256", "typ": "JWT"})
    body = _b64url(payload)
    sig = hmac.new(key, (head + "." + body).encode(), hashlib.sha256).hexdigest()
    return head + "." + body + "." + sig


GOOD_TOKEN = make_token({"sub": "user0", "iat": 1700000000, "exp": 4102444800})
EXPIRED_TOKEN = make_token({"sub": "user0", "iat": 1600000000, "exp": 1600086400})


def _mangle(tok):
    # Flip a few characters in the payload and signature, drop the last dot.
    head, body, sig = tok.split(".")
    body = body[:10] + body[10:20][::-1] + body[20:]
    sig = sig[:8] + "zz" + sig[10:40]
    return head + "." + body + sig


MANGLED_TOKEN = _mangle(GOOD_TOKEN)


# --------------------------------------------------------------------------
# Request model
# --------------------------------------------------------------------------

class Req:
    def __init__(self, method, target, version="HTTP/1.1", headers=(), body="", chunks=None):
        self.method = method
        self.target = target
        self.version = version
        self.headers = list(headers)  # without Content-Length / Connection
        self.body = body.encode() if isinstance(body, str) else body
        self.chunks = chunks  # the body in chunked transfer coding, in these pieces

    def render(self, last, order=None):
        """Render as bytes.  `last` selects Connection: close vs keep-alive
        (HTTP/1.1; HTTP/1.0 gets keep-alive only when not last).  `order`
        is a permutation applied to the full header list."""
        hdrs = list(self.headers)
        if self.version == "HTTP/1.1":
            hdrs.append(("Connection", "close" if last else "keep-alive"))
        elif not last:
            hdrs.append(("Connection", "keep-alive"))
        body = self.body
        if self.chunks is not None:
            hdrs.append(("Transfer-Encoding", "chunked"))
            body = b"".join(b"%x\r\n%s\r\n" % (len(c), c.encode()) for c in self.chunks) + b"0\r\n\r\n"
        elif self.body or self.method == "POST":
            hdrs.append(("Content-Length", str(len(self.body))))
        if order is not None:
            hdrs = [hdrs[i] for i in order(len(hdrs))]
        head = "%s %s %s%s" % (self.method, self.target, self.version, CRLF)
        head += "".join("%s: %s%s" % (k, v, CRLF) for k, v in hdrs)
        head += CRLF
        return head.encode("latin-1") + body


def swap_orders(n, count):
    """Up to `count` distinct non-identity permutations of range(n),
    chosen deterministically: reversal, then left rotations."""
    out, seen = [], {tuple(range(n))}
    cands = [list(range(n))[::-1]] + [
        list(range(k, n)) + list(range(k)) for k in range(1, n)]
    # Also reversed rotations for more variety.
    cands += [c[::-1] for c in cands[1:]]
    for c in cands:
        t = tuple(c)
        if t not in seen:
            seen.add(t)
            out.append(t)
        if len(out) == count:
            break
    return out


# --------------------------------------------------------------------------
# Families: name -> (base request or list of requests, multi count, swaps)
#   multi: 0 = none, 1 = _multi1 only, 2 = _multi1 and _multi2
#   swaps: number of _swapheaderN variants
# --------------------------------------------------------------------------

def login_body(**kw):
    return json.dumps(kw, separators=(",", ":"))


def families():
    F = []

    def fam(name, req, multi=1, swaps=0):
        F.append((name, req, multi, swaps))

    # ---- static files -------------------------------------------------
    fam("get_index_http10", Req("GET", "/index.html", "HTTP/1.0", [HOST, IDENTITY]), 2, 1)
    fam("get_index_http11", Req("GET", "/index.html", "HTTP/1.1", [HOST, UA, ACCEPT]), 2, 2)
    fam("get_root_http11", Req("GET", "/", "HTTP/1.1", [HOST, ACCEPT]), 2, 0)
    fam("get_root_http10", Req("GET", "/", "HTTP/1.0", [HOST]), 0, 0)
    fam("get_public_index_http10", Req("GET", "/public/index.html", "HTTP/1.0", [HOST, IDENTITY]), 1, 0)
    fam("get_style_css_http11", Req("GET", "/style.css", "HTTP/1.1", [HOST, ACCEPT]), 1, 0)
    fam("get_app_js_http11", Req("GET", "/app.js", "HTTP/1.1", [HOST, UA, IDENTITY]), 1, 1)
    fam("get_clip_mp4_http10", Req("GET", "/clip.mp4", "HTTP/1.0", [HOST]), 0, 0)
    fam("get_clip_mp4_http11", Req("GET", "/clip.mp4", "HTTP/1.1", [HOST, IDENTITY]), 1, 0)
    fam("head_index_http11", Req("HEAD", "/index.html", "HTTP/1.1", [HOST, ACCEPT]), 2, 0)
    fam("head_clip_mp4_http10", Req("HEAD", "/clip.mp4", "HTTP/1.0", [HOST]), 1, 0)
    fam("head_root_http10", Req("HEAD", "/", "HTTP/1.0", [HOST, UA]), 0, 0)
    fam("get_dotdot_traversal", Req("GET", "/../../../etc/passwd", "HTTP/1.0", [HOST]), 0, 0)

    # ---- ranges on the video ------------------------------------------
    fam("range_clip_0_99", Req("GET", "/clip.mp4", "HTTP/1.1",
                               [HOST, ("Range", "bytes=0-99"), IDENTITY]), 2, 1)
    fam("range_clip_100_open", Req("GET", "/clip.mp4", "HTTP/1.1",
                                   [HOST, ("Range", "bytes=100-")]), 1, 0)
    fam("range_clip_suffix_50", Req("GET", "/clip.mp4", "HTTP/1.1",
                                    [HOST, ("Range", "bytes=-50")]), 1, 0)

    # ---- 404s under /api and friends ----------------------------------
    for i, path in enumerate(["/api/junk", "/api/login/api/login", "/api/logon",
                              "/api/api", "/api/loginjunk", "/login/api"], 1):
        fam("not_found_%d" % i, Req("GET", path, "HTTP/1.1", [HOST, IDENTITY]),
            2 if i == 1 else 1, 0)

    # ---- methods and sizes --------------------------------------------
    fam("method_unknown", Req("ASD", "/api/login", "HTTP/1.1", [HOST, IDENTITY]), 1, 0)
    fam("method_long", Req("a" * 2000, "/api/login", "HTTP/1.1", [HOST]), 1, 0)
    fam("uri_80kb", Req("GET", "/" + "a" * (80 * 1024 - 1), "HTTP/1.0", [HOST]), 0, 0)

    # ---- login API ----------------------------------------------------
    fam("login_post_valid", Req("POST", "/api/login", "HTTP/1.1",
                                [HOST, JSON_CT, ACCEPT],
                                login_body(username="user0", password="thepassword")), 2, 2)
    fam("login_post_invalid_json", Req("POST", "/api/login", "HTTP/1.1", [HOST, JSON_CT],
                                       '{"username":"user0","password":'), 1, 0)
    # A JSON body with string escapes, and one in chunked transfer coding: structure havoc
    # seldom writes.
    fam("login_post_json_escapes", Req("POST", "/api/login", "HTTP/1.1", [HOST, JSON_CT],
                                       '{"username":"user\\u0030","password":"the\\"pass\\\\word\\u00e9\\ud83d\\ude00\\n"}'),
        0, 0)
    fam("login_post_chunked", Req("POST", "/api/login", "HTTP/1.1", [HOST, JSON_CT],
                                  chunks=['{"username":"user0",', '"password":"thepassword"}']), 1, 0)
    fam("login_post_wrong_password", Req("POST", "/api/login", "HTTP/1.1", [HOST, JSON_CT],
                                         login_body(username="user0", password="wrongpassword")), 1, 0)
    fam("login_post_wrong_user", Req("POST", "/api/login", "HTTP/1.1", [HOST, JSON_CT],
                                     login_body(username="user1", password="thepassword")), 0, 1)
    fam("login_post_extra_keys", Req("POST", "/api/login", "HTTP/1.1", [HOST, JSON_CT],
                                     login_body(username="user0", password="thepassword",
                                                remember=True, extra=[1, 2, 3])), 1, 0)
    fam("login_get_no_cookie", Req("GET", "/api/login", "HTTP/1.1", [HOST, ACCEPT]), 1, 0)
    fam("login_get_cookie", Req("GET", "/api/login", "HTTP/1.1",
                                [HOST, ("Cookie", "auth_token=" + GOOD_TOKEN), ACCEPT]), 1, 1)
    fam("login_get_http10", Req("GET", "/api/login", "HTTP/1.0", [HOST]), 0, 0)
    fam("logout_post", Req("POST", "/api/logout", "HTTP/1.1",
                           [HOST, ("Cookie", "auth_token=" + GOOD_TOKEN)]), 1, 0)
    fam("video_get", Req("GET", "/api/video", "HTTP/1.1", [HOST, ACCEPT, IDENTITY]), 2, 0)

    # ---- private area -------------------------------------------------
    fam("private_good_token", Req("GET", "/private/secret.html", "HTTP/1.1",
                                  [HOST, ("Cookie", "auth_token=" + GOOD_TOKEN), UA]), 1, 1)
    fam("private_expired_token", Req("GET", "/private/secret.html", "HTTP/1.1",
                                     [HOST, ("Cookie", "auth_token=" + EXPIRED_TOKEN)]), 1, 0)
    fam("private_mangled_token", Req("GET", "/private/secret.html", "HTTP/1.1",
                                     [HOST, ("Cookie", "auth_token=" + MANGLED_TOKEN)]), 1, 0)
    fam("private_no_cookie", Req("GET", "/private/secret.html", "HTTP/1.0", [HOST]), 0, 0)
    fam("private_multi_cookie", Req("GET", "/private/secret.html", "HTTP/1.1",
                                    [HOST, ("Cookie", "theme=dark; auth_token=%s; sid=42" % GOOD_TOKEN),
                                     ACCEPT]), 0, 1)

    # ---- a whole session on one connection ----------------------------
    fam("session_login_private_logout", [
        Req("POST", "/api/login", "HTTP/1.1", [HOST, JSON_CT],
            login_body(username="user0", password="thepassword")),
        Req("GET", "/private/secret.html", "HTTP/1.1",
            [HOST, ("Cookie", "auth_token=" + GOOD_TOKEN)]),
        Req("GET", "/api/video", "HTTP/1.1", [HOST]),
        Req("POST", "/api/logout", "HTTP/1.1", [HOST, ("Cookie", "auth_token=" + GOOD_TOKEN)]),
    ], 0, 0)
    return F


def render_seq(reqs, order=None):
    return b"".join(r.render(last=(i == len(reqs) - 1), order=order)
                    for i, r in enumerate(reqs))


# --------------------------------------------------------------------------
# Multi-connection seeds: comux files (contract/src/comux.rs).  Little-endian
# header "comux!!!", u32 version 0, u32 num_conns, u32 num_chunks; then per
# chunk u32 conn, u64 length, u32 sched, u32 flags and the data.  Chunks are
# written in play order with sched = their position.
# --------------------------------------------------------------------------

AWAIT, KEEP_OPEN, BYTEWISE, RESET = 0x1, 0x2, 0x4, 0x8


def comux(num_conns, chunks):
    """chunks: (conn, flags, data) in the order they are played."""
    out = struct.pack("<8sIII", b"comux!!!", 0, num_conns, len(chunks))
    for sched, (conn, flags, data) in enumerate(chunks):
        out += struct.pack("<IQII", conn, len(data), sched, flags) + data
    return out


def comux_corpus():
    files = {}
    # Two, four, eight clients at once: every request line is sent before any
    # request is complete, so a server that serves one client at a time stalls.
    get_root = Req("GET", "/", "HTTP/1.1", [HOST, ACCEPT]).render(last=True)
    line, rest = get_root.split(b"\r\n", 1)
    for n in (2, 4, 8):
        chunks = [(c, 0, line + b"\r\n") for c in range(n)] + [(c, 0, rest) for c in range(n)]
        files["conc_get_root_%d.comux" % n] = comux(n, chunks)

    # Login on A, login on B, logout on A, a private page on B (each waits for
    # its reply): logging A out must not end B's session.  The cookie is the
    # seeds' made-up token; the server's own depends on its key and clock.
    login = Req("POST", "/api/login", "HTTP/1.1", [HOST, JSON_CT],
                login_body(username="user0", password="thepassword")).render(last=False)
    cookie = ("Cookie", "auth_token=" + GOOD_TOKEN)
    logout = Req("POST", "/api/logout", "HTTP/1.1", [HOST, cookie]).render(last=True)
    private = Req("GET", "/private/secret.html", "HTTP/1.1", [HOST, cookie]).render(last=True)
    files["sessions_two_clients.comux"] = comux(2, [
        (0, AWAIT, login), (1, AWAIT, login), (0, AWAIT, logout), (1, 0, private)])

    # The same, in the other common idiom: a form login and a numbered session
    # cookie (a fresh server's first session is 1), which a second connection
    # uses too; A logs it out, then B asks for a private page on the same
    # connection: a server that cached the session per connection must not
    # hand B the freed one.
    form = ("Content-Type", "application/x-www-form-urlencoded")
    sid = ("Cookie", "sid=1")
    form_login = Req("POST", "/login", "HTTP/1.1", [HOST, form], "user=alice").render(last=False)
    home = Req("GET", "/", "HTTP/1.1", [HOST, sid]).render(last=False)
    form_logout = Req("POST", "/logout", "HTTP/1.1", [HOST, sid]).render(last=True)
    form_private = Req("GET", "/private", "HTTP/1.1", [HOST, sid]).render(last=True)
    files["sessions_shared_cookie.comux"] = comux(2, [
        (0, AWAIT, form_login), (1, AWAIT, home), (0, AWAIT, form_logout), (1, 0, form_private)])

    # Early disconnects (closed after one CRLF, and before any), then a
    # normal client that must still be served.
    normal = Req("GET", "/api/login", "HTTP/1.1", [HOST]).render(last=True)
    files["early_disco_one_crlf.comux"] = comux(2, [
        (0, 0, b"GET /api/login HTTP/1.1\r\nHost: localhost\r\n"), (1, 0, normal)])
    files["early_disco_no_crlf.comux"] = comux(2, [
        (0, 0, b"GET /api/login HTTP/1.1"), (1, 0, normal)])

    # One request sent one byte per send.
    files["bytewise_get_login.comux"] = comux(1, [(0, BYTEWISE, normal)])

    # An 80 KB request target, then another client.
    uri_80kb = Req("GET", "/" + "a" * (80 * 1024 - 1), "HTTP/1.0", [HOST]).render(last=True)
    get_root_10 = Req("GET", "/", "HTTP/1.0", [HOST]).render(last=True)
    files["uri_80kb_then_get.comux"] = comux(2, [(0, AWAIT, uri_80kb), (1, 0, get_root_10)])

    # A client that stalls mid-request, keeping its side open, while another
    # is served.
    files["stall_while_served.comux"] = comux(2, [
        (0, KEEP_OPEN, b"GET / HTTP/1.1\r\nHost: loc"), (1, 0, get_root_10)])

    # A curl-like client: HTTP/1.1 without "Connection: close", kept open.
    curl = Req("GET", "/", "HTTP/1.1", [HOST, ("User-Agent", "curl/8.5.0"), ACCEPT]).render(last=False)
    curl = curl.replace(b"Connection: keep-alive\r\n", b"")
    files["keep_open_get.comux"] = comux(1, [(0, KEEP_OPEN, curl)])
    return files


def build_corpus():
    files = {}
    for name, req, multi, swaps in families():
        reqs = req if isinstance(req, list) else [req]
        files[name + ".req"] = render_seq(reqs)
        if multi >= 1:
            files[name + "_multi1.req"] = render_seq(reqs * 2)
        if multi >= 2:
            files[name + "_multi2.req"] = render_seq(reqs * 4)
        if swaps:
            nh = len(reqs[0].render(last=True).split(b"\r\n\r\n")[0].split(b"\r\n")) - 1
            for k, perm in enumerate(swap_orders(nh, swaps), 1):
                files["%s_swapheader%d.req" % (name, k)] = render_seq(
                    reqs, order=lambda n, p=perm: p if len(p) == n else range(n))
    files.update(comux_corpus())
    return files


# --------------------------------------------------------------------------
# Dictionary (AFL -x format)
# --------------------------------------------------------------------------

DICT_ENTRIES = [
    # methods
    ("m_get", "GET "), ("m_head", "HEAD "), ("m_post", "POST "), ("m_put", "PUT "),
    ("m_delete", "DELETE "), ("m_options", "OPTIONS "), ("m_trace", "TRACE "),
    ("m_connect", "CONNECT "), ("m_patch", "PATCH "),
    # versions
    ("v_10", " HTTP/1.0"), ("v_11", " HTTP/1.1"), ("v_09", " HTTP/0.9"), ("v_20", " HTTP/2.0"),
    ("v_bare", "HTTP/"), ("v_big", "HTTP/1.99999999999"),
    # line structure
    ("crlf", "\r\n"), ("crlfcrlf", "\r\n\r\n"), ("lf", "\n"), ("lflf", "\n\n"), ("cr", "\r"),
    ("sp", " "), ("tab", "\t"), ("colon", ":"), ("colon_sp", ": "), ("nul", "\x00"),
    # header names
    ("h_host", "Host: "), ("h_content_length", "Content-Length: "),
    ("h_content_type", "Content-Type: "), ("h_cookie", "Cookie: "), ("h_range", "Range: "),
    ("h_connection", "Connection: "), ("h_transfer_encoding", "Transfer-Encoding: "),
    ("h_accept", "Accept: "), ("h_accept_encoding", "Accept-Encoding: "),
    ("h_if_modified_since", "If-Modified-Since: "), ("h_user_agent", "User-Agent: "),
    ("h_content_length_nosp", "Content-Length:"), ("h_cookie_nosp", "Cookie:"),
    ("h_expect", "Expect: "), ("h_set_cookie", "Set-Cookie: "),
    # header values
    ("val_localhost", "localhost"), ("val_localhost_port", "localhost:8080"),
    ("val_keep_alive", "keep-alive"), ("val_close", "close"), ("val_bytes_eq", "bytes="),
    ("val_chunked", "chunked"), ("val_identity", "identity"), ("val_gzip", "gzip"),
    ("val_json", "application/json"), ("val_form", "application/x-www-form-urlencoded"),
    ("val_text_html", "text/html"), ("val_star", "*/*"), ("val_100_continue", "100-continue"),
    ("val_date", "Thu, 01 Jan 1970 00:00:00 GMT"), ("val_date_future", "Fri, 31 Dec 9999 23:59:59 GMT"),
    # range forms
    ("range_0_99", "bytes=0-99"), ("range_100_open", "bytes=100-"), ("range_suffix", "bytes=-50"),
    ("range_multi", "bytes=0-1,5-9"), ("range_dash", "-"), ("range_comma", ","),
    ("range_inverted", "bytes=99-0"),
    # paths
    ("p_root", "/"), ("p_index", "/index.html"), ("p_public", "/public/index.html"),
    ("p_style", "/style.css"), ("p_app", "/app.js"), ("p_clip", "/clip.mp4"),
    ("p_private", "/private/secret.html"), ("p_private_dir", "/private/"),
    ("p_api", "/api"), ("p_api_login", "/api/login"), ("p_api_logout", "/api/logout"),
    ("p_api_video", "/api/video"), ("p_api_slash", "/api/"),
    # file names / extensions
    ("f_index", "index.html"), ("f_clip", "clip.mp4"), ("f_secret", "secret.html"),
    ("ext_mp4", ".mp4"), ("ext_html", ".html"), ("ext_css", ".css"), ("ext_js", ".js"),
    ("ext_svg", ".svg"),
    # traversal / encoding
    ("t_dotdot", "../"), ("t_dotdot_enc", "%2e%2e/"), ("t_dotdot_enc2", "%2e%2e%2f"),
    ("t_nul_enc", "%00"), ("t_dot_slash", "./"), ("t_double_slash", "//"),
    ("t_etc_passwd", "/../../../etc/passwd"), ("t_query", "?"), ("t_fragment", "#"),
    ("t_pct", "%"),
    # cookies / tokens
    ("c_auth", "auth_token="), ("c_sep", "; "), ("c_eq_sp", " = "), ("c_eq", "="),
    ("jwt_header", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."), ("jwt_dot", "."),
    ("jwt_none", "eyJhbGciOiJub25lIn0."),
    # JSON fragments
    ("j_open_user", "{\"username\":"), ("j_password", "\"password\":"), ("j_user0", "\"user0\""),
    ("j_thepassword", "\"thepassword\""), ("j_close", "}"), ("j_open", "{"),
    ("j_quote", "\""), ("j_null", "null"), ("j_true", "true"),
    ("j_empty", "{}"), ("j_array", "[]"), ("j_sub", "\"sub\":"), ("j_exp", "\"exp\":"),
    ("j_escape", "\\u0000"), ("j_backslash", "\\"), ("j_esc_quote", "\\\""),
    ("j_esc_euro", "\\u20ac"), ("j_esc_surrogate", "\\ud83d"), ("j_big", "1e309"),
    # chunked transfer coding
    ("chunk_last", "0\r\n\r\n"), ("chunk_max", "ffffffffffffffff"), ("chunk_31", "7fffffff"),
    ("chunk_ext", ";x=y"), ("h_te_chunked", "Transfer-Encoding: chunked"),
    ("h_max_forwards", "Max-Forwards: "),
    # numbers
    ("n_neg1", "-1"), ("n_0", "0"), ("n_1", "1"), ("n_100", "100"), ("n_2gb", "2147483647"),
    ("n_2gb_plus", "2147483648"), ("n_4gb", "4294967295"), ("n_4gb_plus", "4294967296"),
    ("n_huge", "99999999999999999999"), ("n_neg_huge", "-99999999999999999999"),
    ("n_hex", "0x10"), ("n_plus", "+5"),
    # misc bytes
    ("b_ff", "\xff"), ("b_del", "\x7f"),
]


def afl_escape(s):
    out = []
    for ch in s.encode("latin-1"):
        if ch == 0x5C:
            out.append("\\\\")
        elif ch == 0x22:
            out.append("\\\"")
        elif 0x20 <= ch < 0x7F:
            out.append(chr(ch))
        else:
            out.append("\\x%02X" % ch)
    return "".join(out)


def build_dict():
    names = [n for n, _ in DICT_ENTRIES]
    assert len(names) == len(set(names)), "duplicate dictionary names"
    values = [v for _, v in DICT_ENTRIES]
    assert len(values) == len(set(values)), "duplicate dictionary values"
    lines = [
        "# pserv-fuzz HTTP dictionary (AFL -x format), generated by gen_seeds.py.",
        "# Each line: name=\"value\"; escapes: \\\\ \\\" \\xNN.",
        "",
    ]
    lines += ['%s="%s"' % (n, afl_escape(v)) for n, v in DICT_ENTRIES]
    return ("\n".join(lines) + "\n").encode("ascii")


# --------------------------------------------------------------------------

def main(argv):
    check = "--check" in argv
    files = build_corpus()
    dict_bytes = build_dict()
    bad = []

    existing = set()
    if os.path.isdir(REQ_DIR):
        existing = {f for f in os.listdir(REQ_DIR) if f.endswith((".req", ".comux"))}
    elif not check:
        os.makedirs(REQ_DIR)

    for name in sorted(existing - set(files)):
        if check:
            bad.append("stale " + name)
        else:
            os.remove(os.path.join(REQ_DIR, name))

    targets = [(os.path.join(REQ_DIR, n), b) for n, b in sorted(files.items())]
    targets.append((DICT_PATH, dict_bytes))
    for path, data in targets:
        cur = None
        if os.path.exists(path):
            with open(path, "rb") as fh:
                cur = fh.read()
        if cur == data:
            continue
        if check:
            bad.append(("missing " if cur is None else "differs ") + os.path.relpath(path, HERE))
        else:
            with open(path, "wb") as fh:
                fh.write(data)

    if check:
        for b in bad:
            print(b)
        print("OK" if not bad else "MISMATCH: %d file(s)" % len(bad))
        return 1 if bad else 0
    print("wrote %d seed files to %s and %d dictionary entries to %s"
          % (len(files), os.path.relpath(REQ_DIR, HERE), len(DICT_ENTRIES),
             os.path.relpath(DICT_PATH, HERE)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
