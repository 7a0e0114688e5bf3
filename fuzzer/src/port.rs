//! Free TCP ports for servers under test.

use anyhow::{bail, Result};
use std::net::TcpListener;

/// A port below 32768 (outside Linux's ephemeral range, so never taken by an outgoing
/// connection between our check and the server's bind), free on IPv4 and IPv6 right now.
pub fn free_port() -> Result<u16> {
    let seed = std::process::id() as u64 ^ libafl_bolts::current_nanos();
    for i in 0..2000u64 {
        let port = 20000 + ((seed.wrapping_mul(2654435761).wrapping_add(i * 7919)) % 12000) as u16;
        let v6_ok = TcpListener::bind(("::", port)).is_ok() || TcpListener::bind(("::1", 0)).is_err();
        if TcpListener::bind(("0.0.0.0", port)).is_ok() && v6_ok {
            return Ok(port);
        }
    }
    bail!("no free TCP port found between 20000 and 32000: too many servers running?")
}
