//! The soak check at CI size: `scripts/soak` (the default command on the sample server, then a
//! stop through OUT/.stop) over 50,000 executions must stay within every bound it prints:
//! descriptors, TIME_WAIT sockets, processes, shared-memory segments, RSS, the exec rate.

use crate::util::*;
use std::process::Command;

#[test]
fn fifty_thousand_executions_leave_no_descriptor_socket_process_or_segment_behind() {
    let _guard = exclusive();
    // scripts/soak is a Python script.
    if !require("python3") {
        return;
    }
    let out = Command::new(repo().join("scripts/soak")).args(["--execs", "50000"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("within bounds"), "{text}");
}
