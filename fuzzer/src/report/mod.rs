//! Stage 4, reporting: what a campaign found, as AFL++ users look for it (the summary of the
//! `fuzzK` folders) and grouped into bugs (triage: replay, locate, minimize, `report.md`).

pub mod summary;
mod symbolize;
pub mod triage;

use anyhow::Result;
use std::path::Path;

/// The end of a campaign in `out`: triage (when asked, and not after Ctrl-C: whoever stopped
/// the campaign wants the prompt back), then the summary.
pub fn after_campaign(out: &Path, triage: bool, interrupted: bool) -> Result<()> {
    if triage && interrupted {
        println!("[triage] skipped, as the campaign was stopped: fuzzer triage {}", out.display());
    } else if triage {
        triage::after_campaign(out, triage::RUNS);
    }
    summary::print(out)
}
