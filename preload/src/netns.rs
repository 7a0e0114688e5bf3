//! A network namespace of the server's own (`SOCKFUZZ_NETNS=1`, set by the fuzzer where the
//! kernel allows it): loopback only, so copies of a server with a fixed port never collide, and
//! the server reaches no other network. Entered at start-up, before `main`, so the fork server
//! and every run live in it; the preload's client thread connects from inside.

use contract::env;

/// Enter a new network namespace (in a new user namespace, when not privileged) and bring
/// loopback up. A failure is reported on stderr and the server runs where it is.
pub fn enter() {
    if std::env::var_os(env::name(env::NETNS)).is_none_or(|v| v != "1") {
        return;
    }
    // A program the server starts stays in this namespace (no namespace of its own). Before
    // `main`, no other thread reads the environment.
    std::env::remove_var(env::name(env::NETNS));
    // SAFETY: getuid, getgid and unshare have no memory preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: as above.
    let entered = unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0
        || (unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } == 0 && map_ids(uid, gid));
    if !entered || !loopback_up() {
        let e = std::io::Error::last_os_error();
        crate::log::error(format_args!("cannot run the server in a network namespace of its own: {e}"));
    }
}

/// Map our ids into the new user namespace (ourselves only).
fn map_ids(uid: libc::uid_t, gid: libc::gid_t) -> bool {
    std::fs::write("/proc/self/setgroups", "deny").is_ok()
        && std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1")).is_ok()
        && std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")).is_ok()
}

/// `ip link set lo up`.
fn loopback_up() -> bool {
    // SAFETY: socket has no preconditions; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return false;
    }
    // SAFETY: ifreq is plain data; the name "lo" fits; SIOCGIFFLAGS/SIOCSIFFLAGS read and write
    // the flags in it; `fd` is ours and closed once.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let up = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) == 0
        };
        crate::real::close(fd);
        up
    }
}
