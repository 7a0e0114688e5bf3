//! A network namespace of the server's own (`SOCKFUZZ_NETNS=1`, set by the fuzzer where the
//! kernel allows it): loopback only, so copies of a server with a fixed port never collide, and
//! the server reaches no other network. Entered at start-up, before `main`, so the fork server
//! and every run live in it; the preload's client thread connects from inside.
//!
//! The namespace must not change what the server sees at start-up. glibc's `getaddrinfo` with
//! `AI_ADDRCONFIG` (what a student's `AI_PASSIVE | AI_ADDRCONFIG` bind does) returns only the
//! families the machine has a non-loopback address of, and in here only loopback has one: an
//! `AF_INET` lookup would fail with "Name or service not known". So the host's addresses are
//! noted before leaving it and [`host_hints`] makes that decision as on the host. (Giving the
//! namespace a non-loopback address instead would take netlink and an address that could clash
//! with a real one; a server that needs more of the host's network than this, say an interface
//! by name, is moved back to the host's network by the fuzzer's start-up check.)

use contract::env;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// This process runs in the namespace we made (set once, before `main`).
static INSIDE: AtomicBool = AtomicBool::new(false);
/// Whether the host had an IPv4 (an IPv6) address that `AI_ADDRCONFIG` counts, when we left it.
static HOST_IPV4: AtomicBool = AtomicBool::new(false);
static HOST_IPV6: AtomicBool = AtomicBool::new(false);

/// Enter a new network namespace (in a new user namespace, when not privileged) and bring
/// loopback up. A failure is reported on stderr and the server runs where it is.
pub fn enter() {
    if std::env::var_os(env::name(env::NETNS)).is_none_or(|v| v != "1") {
        return;
    }
    // A program the server starts stays in this namespace (no namespace of its own). Before
    // `main`, no other thread reads the environment.
    std::env::remove_var(env::name(env::NETNS));
    note_host_addresses();
    // SAFETY: getuid, getgid and unshare have no memory preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: as above.
    let entered = unsafe { libc::unshare(libc::CLONE_NEWNET) } == 0
        || (unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) } == 0 && map_ids(uid, gid));
    INSIDE.store(entered, Relaxed);
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

/// Note which families the host has an address of, counted as glibc's `AI_ADDRCONFIG` counts
/// them (its `__check_pf`): any address but 127.0.0.1 and ::1, whatever the interface's state.
fn note_host_addresses() {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` (freed below) on success.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        // Cannot tell (out of memory, no netlink): assume a networked host, so that a server
        // asking for AI_ADDRCONFIG starts, as it almost surely would there.
        HOST_IPV4.store(true, Relaxed);
        HOST_IPV6.store(true, Relaxed);
        return;
    }
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs made, alive until freeifaddrs; a
        // non-null ifa_addr points to a sockaddr of the size its family says.
        unsafe {
            let addr = (*entry).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let ip = (*addr.cast::<libc::sockaddr_in>()).sin_addr.s_addr;
                        if ip != u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() {
                            HOST_IPV4.store(true, Relaxed);
                        }
                    }
                    libc::AF_INET6 => {
                        let ip = (*addr.cast::<libc::sockaddr_in6>()).sin6_addr.s6_addr;
                        if ip != std::net::Ipv6Addr::LOCALHOST.octets() {
                            HOST_IPV6.store(true, Relaxed);
                        }
                    }
                    _ => {}
                }
            }
            entry = (*entry).ifa_next;
        }
    }
    // SAFETY: the list getifaddrs made, freed once and no longer read.
    unsafe { libc::freeifaddrs(list) };
}

/// The hints that make glibc's `getaddrinfo` answer as it would on the host, or `None` to pass
/// the caller's on unchanged (outside our namespace, no `AI_ADDRCONFIG`, or a family the host
/// has no address of either, where glibc's EAI_NONAME is the host's answer too). Inside, glibc
/// counts no address at all: we make its `AI_ADDRCONFIG` decision with the host's addresses
/// (an `AF_UNSPEC` lookup narrowed to the one family the host has, if it has one only) and
/// clear the flag.
///
/// # Safety
///
/// `hints` is NULL or points to a readable `addrinfo`.
pub unsafe fn host_hints(hints: *const libc::addrinfo) -> Option<libc::addrinfo> {
    if !INSIDE.load(Relaxed) {
        return None;
    }
    let mut host = if hints.is_null() {
        // glibc's hints for NULL: AF_UNSPEC, AI_V4MAPPED | AI_ADDRCONFIG.
        // SAFETY: addrinfo is plain data; all-zero is a valid value (null pointers, no flags).
        let mut default: libc::addrinfo = unsafe { std::mem::zeroed() };
        default.ai_family = libc::AF_UNSPEC;
        default.ai_flags = libc::AI_V4MAPPED | libc::AI_ADDRCONFIG;
        default
    } else {
        // SAFETY: a non-null `hints` is the caller's readable addrinfo; only its first fields
        // count as hints, the pointers are copied, never followed.
        unsafe { *hints }
    };
    if host.ai_flags & libc::AI_ADDRCONFIG == 0 {
        return None;
    }
    let (v4, v6) = (HOST_IPV4.load(Relaxed), HOST_IPV6.load(Relaxed));
    host.ai_family = match host.ai_family {
        libc::AF_UNSPEC if v4 && !v6 => libc::AF_INET,
        libc::AF_UNSPEC if v6 && !v4 => libc::AF_INET6,
        libc::AF_UNSPEC => libc::AF_UNSPEC,
        libc::AF_INET if v4 => libc::AF_INET,
        libc::AF_INET6 if v6 => libc::AF_INET6,
        _ => return None,
    };
    host.ai_flags &= !libc::AI_ADDRCONFIG;
    Some(host)
}
