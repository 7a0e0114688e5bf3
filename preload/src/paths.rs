//! Path-traversal oracle (`SOCKFUZZ_ROOT`): once the server listens, every path it opens or
//! looks up is checked before the real call. A path built from the web root (it starts with
//! the root, or is relative to a directory inside it) must stay inside: textually (`..`) and,
//! if it exists, after symlinks. Other paths (mime types, /dev/urandom, /proc, libraries, a
//! log file) are none of our business and cost a prefix compare. A finding ends the process by
//! [`SIG_TRAVERSAL`].
//!
//! `realpath` itself never flags: a correct server resolves `root + uri` and then checks the
//! prefix. An escaping result of a root-derived input is remembered instead, and opening or
//! looking up exactly that path later is the finding.
//!
//! Hooks run on any server thread, in forked children, maybe in signal handlers: no locks, no
//! heap (fixed stack buffers), errno preserved.

use crate::state::{config, TRIGGERED};
use crate::{end, finding, log, real};
use contract::verdicts::SIG_TRAVERSAL;
use libc::{c_char, c_int};
use std::ffi::{CStr, OsStr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

const PATH_MAX: usize = libc::PATH_MAX as usize;

/// What the server does with the path (only changes the wording of a finding).
#[derive(Clone, Copy)]
pub enum Access {
    Open,
    Lookup,
}

/// The web root, without a trailing '/' ("/" is kept as "", under which every absolute path is).
pub struct Root {
    /// As given, made absolute and lexically normalized.
    given: Vec<u8>,
    /// Symlinks resolved (`given` if the root cannot be resolved).
    canonical: Vec<u8>,
}

impl Root {
    /// Called once, from [`init`].
    fn new(given: &OsStr) -> Root {
        let (mut abs, mut out) = (Buf::new(), Buf::new());
        // SAFETY: AT_FDCWD needs no live descriptor.
        if !unsafe { absolute(libc::AT_FDCWD, given.as_encoded_bytes(), &mut abs) } {
            abs.len = 0;
            abs.push(given.as_encoded_bytes());
        }
        normalize(abs.as_slice(), &mut out);
        let trim = |p: &[u8]| if p == b"/" { Vec::new() } else { p.to_vec() };
        let given = trim(out.as_slice());
        // SAFETY: `abs.c_str()` is a C string; realpath writes at most PATH_MAX bytes into `out`.
        let resolved = unsafe { realpath_into(abs.c_str(), &mut out) };
        let canonical = if resolved { trim(out.as_slice()) } else { given.clone() };
        Root { given, canonical }
    }

    fn contains(&self, path: &[u8]) -> bool {
        under(path, &self.given) || under(path, &self.canonical)
    }

    fn shown(&self) -> &[u8] {
        if self.given.is_empty() {
            b"/"
        } else {
            &self.given
        }
    }
}

/// The web root of `config().root`; `None` (never built, or no root): the oracle is off.
static ROOT: OnceLock<Option<Root>> = OnceLock::new();

/// Build the web root from the configuration, at the trigger (before `TRIGGERED` is set, so
/// that no check, maybe in a signal handler, ever builds it: that allocates).
pub fn init() {
    ROOT.get_or_init(|| config().root.as_deref().map(Root::new));
}

/// The web root, once built (a lock-free read).
fn root() -> Option<&'static Root> {
    ROOT.get().and_then(Option::as_ref)
}

/// Checks a path the server is about to open (`access`) or look up; dies on a finding.
/// `follow`: the call follows a final symlink (not lstat, O_NOFOLLOW, AT_SYMLINK_NOFOLLOW).
///
/// # Safety
///
/// `path` is NULL or a C string, and `dirfd` is the call's directory (the hooked
/// function's own contract).
pub unsafe fn check(dirfd: c_int, path: *const c_char, follow: bool, access: Access) {
    if !TRIGGERED.load(Relaxed) || path.is_null() {
        return;
    }
    let Some(root) = root() else { return };
    // SAFETY: a C string (our contract).
    let raw = unsafe { CStr::from_ptr(path) }.to_bytes();
    // The common case, near-free: an absolute path elsewhere.
    if raw.is_empty() || (raw[0] == b'/' && !root.contains(raw) && ESCAPED_COUNT.load(Relaxed) == 0) {
        return;
    }
    let errno = get_errno();
    // SAFETY: as ours.
    unsafe { check_slow(root, dirfd, raw, follow, access) };
    set_errno(errno);
}

/// The rest of [`check`], for a path that may concern the root (kept out of line).
///
/// # Safety
///
/// `dirfd` is the call's directory (as for [`check`]).
#[inline(never)]
unsafe fn check_slow(root: &Root, dirfd: c_int, raw: &[u8], follow: bool, access: Access) {
    let mut abs = Buf::new();
    // SAFETY: `dirfd` is the call's own.
    if !unsafe { absolute(dirfd, raw, &mut abs) } {
        return;
    }
    if !root.contains(abs.as_slice()) {
        if realpath_escaped(abs.as_slice()) {
            found(access, raw, abs.as_slice(), root);
        }
        return;
    }
    let mut out = Buf::new();
    normalize(abs.as_slice(), &mut out);
    if !root.contains(out.as_slice()) {
        found(access, raw, out.as_slice(), root); // climbed out through `..`
    }
    // SAFETY: `abs` holds an absolute path.
    if unsafe { resolve(&mut abs, follow, &mut out) } && !under(out.as_slice(), &root.canonical) {
        found(access, raw, out.as_slice(), root); // reached out through a symlink
    }
}

/// After `realpath(input)` returned `output`: remember an output outside the root that came
/// from an input inside it.
///
/// # Safety
///
/// `input` and `output` are NULL or C strings.
pub unsafe fn note_realpath(input: *const c_char, output: *const c_char) {
    if !TRIGGERED.load(Relaxed) || input.is_null() || output.is_null() {
        return;
    }
    let Some(root) = root() else { return };
    // SAFETY: C strings (our contract).
    let (raw, out) = unsafe { (CStr::from_ptr(input).to_bytes(), CStr::from_ptr(output).to_bytes()) };
    if under(out, &root.canonical) || (raw.first() == Some(&b'/') && !root.contains(raw)) {
        return;
    }
    let errno = get_errno();
    let mut abs = Buf::new();
    // SAFETY: AT_FDCWD needs no live descriptor.
    if unsafe { absolute(libc::AT_FDCWD, raw, &mut abs) } && root.contains(abs.as_slice()) {
        let slot = ESCAPED_COUNT.fetch_add(1, Relaxed) % ESCAPED.len();
        ESCAPED[slot].store(hash(out), Relaxed);
    }
    set_errno(errno);
}

/// Whether an open with `flags` follows a final symlink.
pub fn follows(flags: c_int) -> bool {
    flags & libc::O_NOFOLLOW == 0
}

/// Whether an *at lookup with `flags` follows a final symlink.
pub fn follows_at(flags: c_int) -> bool {
    flags & libc::AT_SYMLINK_NOFOLLOW == 0
}

/// Hashes (0: empty) of the last escaping `realpath` results: lock-free, and a 64-bit hash
/// stands in for the path (a false match is about 2^-61 per lookup).
static ESCAPED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static ESCAPED_COUNT: AtomicUsize = AtomicUsize::new(0);

fn realpath_escaped(path: &[u8]) -> bool {
    let h = hash(path);
    ESCAPED_COUNT.load(Relaxed) > 0 && ESCAPED.iter().any(|e| e.load(Relaxed) == h)
}

/// FNV-1a, never 0.
fn hash(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    h.max(1)
}

/// Whether `path` is `root` or below it.
fn under(path: &[u8], root: &[u8]) -> bool {
    path.starts_with(root) && matches!(path.get(root.len()), None | Some(b'/'))
}

/// A path in a fixed buffer (hooks must not allocate), with room for a cwd plus a relative path.
struct Buf {
    bytes: [u8; 2 * PATH_MAX],
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf { bytes: [0; 2 * PATH_MAX], len: 0 }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Appends `s`, keeping room for a NUL; false if it does not fit.
    fn push(&mut self, s: &[u8]) -> bool {
        let end = self.len + s.len();
        if end >= self.bytes.len() {
            return false;
        }
        self.bytes[self.len..end].copy_from_slice(s);
        self.len = end;
        true
    }

    fn c_str(&mut self) -> *const c_char {
        self.bytes[self.len] = 0;
        self.bytes.as_ptr().cast()
    }

    /// Adopts the C string a libc call wrote at the start of the buffer.
    fn take_c_str(&mut self) {
        self.len = self.bytes.iter().position(|&b| b == 0).unwrap_or(0);
    }
}

/// `path` made absolute in `out`: relative to the cwd, or to `dirfd` for the *at functions.
/// False when that cannot be told (no cwd, `dirfd` is not a directory with a name).
///
/// # Safety
///
/// `dirfd` is AT_FDCWD or any integer (a bad descriptor only fails the readlink).
unsafe fn absolute(dirfd: c_int, path: &[u8], out: &mut Buf) -> bool {
    out.len = 0;
    if path.first() != Some(&b'/') {
        let base: *mut c_char = out.bytes.as_mut_ptr().cast();
        if dirfd == libc::AT_FDCWD {
            // getcwd, not a cached cwd: the server may chdir at any time.
            // SAFETY: `out` has room for PATH_MAX bytes.
            if unsafe { libc::getcwd(base, PATH_MAX) }.is_null() {
                return false;
            }
            out.take_c_str();
        } else {
            if dirfd < 0 {
                return false;
            }
            let link = proc_fd_link(dirfd);
            // SAFETY: `link` is a C string; `out` has room for PATH_MAX bytes.
            let n = unsafe { libc::readlink(link.as_ptr().cast(), base, PATH_MAX) };
            if n <= 0 || n as usize >= PATH_MAX {
                return false;
            }
            out.len = n as usize;
        }
        // "(unreachable)/..." (cwd outside a chroot), "socket:[...]": nothing to compare.
        if out.bytes[0] != b'/' || !out.as_slice().ends_with(b"/") && !out.push(b"/") {
            return false;
        }
    }
    out.push(path)
}

/// "/proc/self/fd/N" as a C string, for `fd >= 0`.
fn proc_fd_link(fd: c_int) -> [u8; 32] {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    let mut link = [0u8; 32];
    link[..PREFIX.len()].copy_from_slice(PREFIX);
    let (mut n, digits) = (fd.unsigned_abs(), fd.unsigned_abs().checked_ilog10().unwrap_or(0) as usize + 1);
    for d in link[PREFIX.len()..PREFIX.len() + digits].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    link
}

/// Lexical normalization of the absolute `path` into `out` (no longer than `path`): no "//",
/// ".", or "..", which climbs one component (not past "/").
fn normalize(path: &[u8], out: &mut Buf) {
    out.len = 0;
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => out.len = out.as_slice().iter().rposition(|&b| b == b'/').unwrap_or(0),
            _ => {
                out.push(b"/");
                out.push(part);
            }
        }
    }
    if out.len == 0 {
        out.push(b"/");
    }
}

/// `abs` with symlinks resolved as the call resolves them (a final one only if `follow`), in
/// `out`; false if the path does not exist.
///
/// # Safety
///
/// none beyond valid buffers (both are ours).
unsafe fn resolve(abs: &mut Buf, follow: bool, out: &mut Buf) -> bool {
    let slash = abs.as_slice().iter().rposition(|&b| b == b'/').unwrap_or(0);
    let last = slash + 1..abs.len;
    if follow || matches!(&abs.bytes[last.clone()], b"" | b"." | b"..") {
        // SAFETY: a C string, and room for PATH_MAX bytes in `out`.
        return unsafe { realpath_into(abs.c_str(), out) };
    }
    // lstat and O_NOFOLLOW see a final symlink itself: resolve its directory only.
    // SAFETY: `struct stat` is plain data, valid when zeroed.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a C string and a `struct stat` to fill.
    if unsafe { real::lstat(abs.c_str(), (&raw mut st).cast()) } != 0 {
        return false;
    }
    let cut = slash.max(1); // the directory of "/x" is "/"
    let saved = abs.bytes[cut];
    abs.bytes[cut] = 0;
    // SAFETY: the directory part is now a C string; room for PATH_MAX bytes in `out`.
    let found = unsafe { realpath_into(abs.bytes.as_ptr().cast(), out) };
    abs.bytes[cut] = saved;
    found && (out.as_slice() == b"/" || out.push(b"/")) && out.push(&abs.bytes[last])
}

/// The real realpath (ours would note the result) into `out`.
///
/// # Safety
///
/// `path` is a C string.
unsafe fn realpath_into(path: *const c_char, out: &mut Buf) -> bool {
    // SAFETY: `out` has room for the PATH_MAX bytes realpath may write.
    let found = !unsafe { real::realpath(path, out.bytes.as_mut_ptr().cast()) }.is_null();
    if found {
        out.take_c_str();
    }
    found
}

/// Reports the finding (stderr and `SOCKFUZZ_FINDING_FILE`) and dies by [`SIG_TRAVERSAL`].
fn found(access: Access, raw: &[u8], resolved: &[u8], root: &Root) -> ! {
    let verb: &[u8] = match access {
        Access::Open => b"opened",
        Access::Lookup => b"looked up",
    };
    log::error_bytes(&[
        b"path traversal: the server ",
        verb,
        b" \"",
        raw,
        b"\" (resolves to ",
        resolved,
        b"), outside its web root ",
        root.shown(),
    ]);
    // One line `RAW\tRESOLVED\n`.
    if let Some(mut file) = finding::Writer::create() {
        file.escaped(raw);
        file.put(b"\t");
        file.escaped(resolved);
        file.put(b"\n");
    }
    end::die_by(SIG_TRAVERSAL)
}

fn get_errno() -> c_int {
    // SAFETY: errno is thread-local and always valid to read.
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: c_int) {
    // SAFETY: as in `get_errno`.
    unsafe { *libc::__errno_location() = value };
}
