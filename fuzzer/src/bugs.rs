//! `OUT/triage.json`: the bugs triage found in a campaign's findings, one group of files per bug.
//! Written by triage (`report::triage`), read by the summary and by the live screen, which
//! shows them once a triage has run.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One bug: the files whose runs fail the same way.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Group {
    pub kind: String,
    /// Where: `function (file:line)` of the top frame in the server's sources, how a traversal
    /// got out, or what a descriptor leak kept open.
    pub location: String,
    /// The top frames in the server's sources, innermost first.
    pub frames: Vec<String>,
    /// The library function the innermost frame called when it failed (`strlen`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<String>,
    /// The files, relative to OUT.
    pub files: Vec<String>,
    /// Runs of its files that failed this way, of all runs of its files.
    pub reproduced: usize,
    pub runs: usize,
    /// The shortest input found (`triage/N.min`, relative to OUT).
    pub minimized: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Report {
    groups: Vec<Group>,
}

/// The groups of an earlier triage (`OUT/triage.json`), if there was one.
fn load(out: &Path) -> Option<Vec<Group>> {
    let text = std::fs::read_to_string(out.join("triage.json")).ok()?;
    serde_json::from_str::<Report>(&text).ok().map(|r| r.groups)
}

/// The groups of `OUT/triage.json` as [`list`] puts them, if triage has run.
pub fn listed(out: &Path) -> Option<String> {
    load(out).map(|groups| list(&groups))
}

/// `N distinct bugs:` and one line per group, for the summary.
pub fn list(groups: &[Group]) -> String {
    let bugs = groups.iter().filter(|g| g.reproduced > 0).count();
    let mut t = format!("{bugs} distinct bug{} (fuzzer triage):\n", if bugs == 1 { "" } else { "s" });
    for (n, g) in groups.iter().enumerate() {
        t += &format!(
            "   {}. {}{}{}: {} file{}, reproduced {}/{}\n",
            n + 1,
            g.kind,
            place(&g.location),
            g.calls.as_ref().map_or(String::new(), |f| format!(", calling {f}")),
            g.files.len(),
            if g.files.len() == 1 { "" } else { "s" },
            g.reproduced,
            g.runs
        );
    }
    t
}

/// Where a group's bug is, as it follows its kind: ` in function (file:line)`, how a traversal
/// got out, or what a descriptor leak kept open (` of file www/a.html`).
pub fn place(location: &str) -> String {
    match location {
        "" => String::new(),
        how if how.starts_with("through ") || how.starts_with("of ") => format!(" {how}"),
        at => format!(" in {at}"),
    }
}

/// Write `OUT/triage.json`.
pub fn save(out: &Path, groups: &[Group]) -> Result<()> {
    let json = out.join("triage.json");
    let report = Report { groups: groups.to_vec() };
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))
}
