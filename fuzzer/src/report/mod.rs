//! Stage 4, reporting: what a campaign found, as AFL++ users look for it (the summary of the
//! `fuzzK` folders), grouped into bugs (triage: replay, locate, minimize, `report.md`), and
//! over time (charts of `plot_data` in `OUT/plots`).

mod findings;
pub mod plot;
pub mod summary;
mod symbolize;
pub mod triage;

use anyhow::Result;
use std::path::Path;
use std::time::Duration;

/// The end of a campaign in `out` that ran for `campaign`: triage (when asked, and not after Ctrl-C: whoever stopped
/// the campaign wants the prompt back), the charts, then the summary.
pub fn after_campaign(out: &Path, triage: bool, interrupted: bool, campaign: Duration) -> Result<()> {
    if triage && interrupted {
        println!("[triage] skipped, as the campaign was stopped: fuzzer triage {}", out.display());
    } else if triage {
        triage::after_campaign(out, triage::RUNS, campaign);
    }
    plot::after_campaign(out);
    summary::print(out)
}
