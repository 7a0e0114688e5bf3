//! The live screen, on a real terminal (tmux): it draws, and `q` or Ctrl-C ends the campaign
//! cleanly (exit status 0, the summary on the normal screen, the state kept for `--resume`).

use crate::util::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        Tmux { socket: format!("pserv-fuzz-test-{name}-{}", std::process::id()) }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux")
    }

    /// Start `command` (a shell line) in a 120x40 window.
    fn start(&self, command: &str) {
        let out = self.run(&["new-session", "-d", "-x", "120", "-y", "40", command]);
        assert!(out.status.success(), "tmux: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p"]).stdout).into_owned()
    }

    /// The screen once `ready` holds for it, within `limit`.
    fn wait_for(&self, limit: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "timed out; the screen shows:\n{screen}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The total executions the screen shows.
fn executions(screen: &str) -> Option<u64> {
    let line = screen.lines().find(|l| l.contains("executions"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The live screen's parts, with a client row of `fuzz0` that has run.
fn drawn(screen: &str) -> bool {
    screen.contains("pserv-fuzz")
        && screen.contains(" clients ")
        && screen.contains("last new path")
        && screen.contains("q or Ctrl-C: stop")
        && screen.lines().any(|l| l.contains("fuzz0"))
        && executions(screen).is_some_and(|n| n > 0)
}

/// Start a campaign in tmux, wait for the screen, press `key`, and check the clean end.
fn stop_with(tmux: &Tmux, fuzz_args: &str, out: &Path, key: &str) {
    let command = format!(
        "{} {fuzz_args} -o {} -d 300 --no-cmplog --sanitizer none; echo EXIT=$?; sleep 600",
        fuzzer().display(),
        out.display()
    );
    tmux.start(&command);
    let screen = tmux.wait_for(Duration::from_secs(180), drawn);
    eprintln!("{screen}");
    // Live: redrawn with more executions.
    let count = |s: &str| executions(s).unwrap_or(0);
    let first = count(&screen);
    tmux.wait_for(Duration::from_secs(30), |s| drawn(s) && count(s) > first);
    let pressed = Instant::now();
    assert!(tmux.run(&["send-keys", key]).status.success());
    let after = tmux.wait_for(Duration::from_secs(60), |s| s.contains("EXIT="));
    eprintln!("{after}");
    assert!(pressed.elapsed() < Duration::from_secs(30), "took {:?} to stop", pressed.elapsed());
    assert!(after.contains("EXIT=0"), "{after}");
    // Back on the normal screen: the lines before the campaign and the summary after it.
    assert!(after.contains("[Fuzzing Summary]"), "{after}");
    assert!(!after.contains(" clients "), "{after}");
    // The terminal is given back: main screen, cursor shown.
    let modes = tmux.run(&["display-message", "-p", "#{alternate_on} #{cursor_flag}"]);
    assert_eq!(String::from_utf8_lossy(&modes.stdout).trim(), "0 1");
    assert_eq!(std::fs::read(out.join(".stop")).unwrap(), b"user");
    assert!(stat(&out.join("fuzz0"), "execs_done").unwrap_or(0) > 0);
    assert!(std::fs::read_dir(out.join("fuzz0/queue")).unwrap().count() > 0);
}

#[test]
fn the_screen_draws_and_q_then_ctrl_c_end_the_campaign_cleanly() {
    if !require("tmux") {
        return;
    }
    let src = pserv_copy();
    let out = scratch_dir("screen-out");
    let _ = std::fs::remove_dir_all(&out);
    stop_with(&Tmux::new("q"), &format!("--src-dir {}", src.display()), &out, "q");
    // Ctrl-C on the screen is a key, not a signal (raw mode): it must stop it just the same.
    let server = out.join("server-fuzz");
    stop_with(&Tmux::new("ctrl-c"), &format!("--resume --server {}", server.display()), &out, "C-c");
}
