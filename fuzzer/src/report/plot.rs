//! `fuzzer plot OUT`: charts of a campaign over time, like afl-plot's, drawn from every
//! instance's `OUT/fuzzK*/plot_data` (AFL++'s format, written by fuzz/stats.rs) into
//! `OUT/plots/` as PNG and SVG: execution speed, corpus size (paths), saved crashes and hangs;
//! one line per instance and, with several instances, their total.

use anyhow::{bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

/// Pixels of one panel.
const SIZE: (u32, u32) = (1000, 400);

/// Pixels to the right of each panel for its legend (instance names).
const LEGEND_WIDTH: u32 = 140;

/// Line colours that stay readable on white (the total is black).
const COLORS: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The columns of one `plot_data` row that are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Row {
    secs: f64,
    paths: f64,
    crashes: f64,
    hangs: f64,
    execs_per_sec: f64,
}

/// One instance's rows; `name` is its folder (`fuzz0`, `fuzz0-asan`, ...).
struct Instance {
    name: String,
    rows: Vec<Row>,
}

/// One chart file; each panel is drawn above the next.
struct Chart {
    file: &'static str,
    panels: &'static [Panel],
}

struct Panel {
    title: &'static str,
    unit: &'static str,
    value: fn(&Row) -> f64,
}

const CHARTS: [Chart; 3] = [
    Chart {
        file: "execs",
        panels: &[Panel { title: "Executions per second", unit: "execs/s", value: |r| r.execs_per_sec }],
    },
    Chart { file: "paths", panels: &[Panel { title: "Corpus size (paths)", unit: "entries", value: |r| r.paths }] },
    Chart {
        file: "findings",
        panels: &[
            Panel { title: "Saved crashes", unit: "crashes", value: |r| r.crashes },
            Panel { title: "Saved hangs", unit: "hangs", value: |r| r.hangs },
        ],
    },
];

/// `fuzzer plot OUT`.
pub fn main(out: &Path) -> Result<ExitCode> {
    let (dir, instances) = write(out)?;
    println!("[plot] charts of {instances} client(s): {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// At the end of a campaign: the charts, or one warning line (the campaign's results stand).
pub fn after_campaign(out: &Path) {
    match write(out) {
        Ok((dir, _)) => println!("[plot] charts: {}", dir.display()),
        Err(e) => println!("[plot] no charts: {e:#}"),
    }
}

/// Writes every chart into `OUT/plots/`; returns that folder and the number of instances.
fn write(out: &Path) -> Result<(PathBuf, usize)> {
    let instances = read_instances(out)?;
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = load_font();
    if !text {
        println!("[plot] no TrueType font under /usr/share/fonts, so the charts have no text: apt-get install fonts-dejavu-core");
    }
    for chart in &CHARTS {
        let height = SIZE.1 * chart.panels.len() as u32;
        let png = dir.join(format!("{}.png", chart.file));
        draw(BitMapBackend::new(&png, (SIZE.0, height)).into_drawing_area(), chart, &instances, text)
            .with_context(|| format!("cannot draw {}", png.display()))?;
        let svg = dir.join(format!("{}.svg", chart.file));
        draw(SVGBackend::new(&svg, (SIZE.0, height)).into_drawing_area(), chart, &instances, text)
            .with_context(|| format!("cannot draw {}", svg.display()))?;
    }
    Ok((dir, instances.len()))
}

/// The instances' `plot_data`, in folder order (core number, then the ASan instance).
fn read_instances(out: &Path) -> Result<Vec<Instance>> {
    if !out.is_dir() {
        bail!(
            "{} is not a folder: give the output folder of a campaign (fuzzer's -o, by default fuzz_out)",
            out.display()
        );
    }
    let mut instances = Vec::new();
    for entry in std::fs::read_dir(out).with_context(|| format!("cannot list {}", out.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", out.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let file = entry.path().join("plot_data");
        if !name.starts_with("fuzz") || !file.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        instances.push(Instance { name, rows: parse(&text) });
    }
    if instances.is_empty() {
        bail!(
            "{} holds no fuzzK/plot_data: give the output folder of a campaign (fuzzer's -o) that has run",
            out.display()
        );
    }
    if instances.iter().all(|c| c.rows.is_empty()) {
        bail!("the plot_data files in {} hold no rows yet: a campaign adds one every 5 s, so plot again once it has run a little", out.display());
    }
    instances.sort_by(|a, b| crate::fuzz::instance_order(&a.name).cmp(&crate::fuzz::instance_order(&b.name)));
    Ok(instances)
}

/// The complete rows of a `plot_data` text. Comments are skipped, and so is a last line without
/// its newline (an instance may be writing it as we read), and any row that does not parse.
fn parse(text: &str) -> Vec<Row> {
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut rows = Vec::new();
    let (mut offset, mut last) = (0.0, 0.0);
    let mut previous: Option<(f64, f64)> = None;
    for line in complete.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if cols.len() != 13 {
            continue;
        }
        let num = |i: usize| cols[i].trim_end_matches('%').parse::<f64>().ok();
        let (Some(secs), Some(paths), Some(crashes), Some(hangs), Some(average), Some(execs)) =
            (num(0), num(3), num(7), num(8), num(10), num(11))
        else {
            continue;
        };
        // A resumed campaign restarts its clock at 0: its rows continue after the earlier ones.
        if secs + offset < last {
            offset = last;
        }
        // The file's execs_per_sec is the average since the start: the speed of each interval
        // comes from the executions it added (the file's figure where there is no interval).
        let execs_per_sec = match previous {
            Some((t, n)) if secs + offset > t && execs >= n => (execs - n) / (secs + offset - t),
            _ => average,
        };
        previous = Some((secs + offset, execs));
        last = secs + offset;
        rows.push(Row { secs: last, paths, crashes, hangs, execs_per_sec });
    }
    rows
}

/// The sum over instances at every time any of them wrote a row, each instance counting its latest
/// row by then (0 before its first).
fn total(instances: &[Instance], value: fn(&Row) -> f64) -> Vec<(f64, f64)> {
    let mut times: Vec<f64> = instances.iter().flat_map(|c| c.rows.iter().map(|r| r.secs)).collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    times
        .into_iter()
        .map(|t| {
            let sum = instances.iter().filter_map(|c| c.rows.iter().rev().find(|r| r.secs <= t)).map(value).sum();
            (t, sum)
        })
        .collect()
}

/// One line of a panel, in chart coordinates.
struct Line {
    name: String,
    color: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    chart: &Chart,
    instances: &[Instance],
    text: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let last = instances.iter().flat_map(|c| c.rows.iter().map(|r| r.secs)).fold(0.0, f64::max);
    let (scale, unit) = match last {
        t if t <= 300.0 => (1.0, "seconds"),
        t if t <= 3.0 * 3600.0 => (60.0, "minutes"),
        _ => (3600.0, "hours"),
    };
    let end = (last / scale).max(1.0);
    for (area, panel) in root.split_evenly((chart.panels.len(), 1)).iter().zip(chart.panels) {
        let mut lines: Vec<Line> = instances
            .iter()
            .enumerate()
            .map(|(i, c)| Line {
                name: c.name.clone(),
                color: COLORS[i % COLORS.len()],
                width: 2,
                points: c.rows.iter().map(|r| (r.secs / scale, (panel.value)(r))).collect(),
            })
            .collect();
        if instances.len() > 1 {
            let points = total(instances, panel.value).into_iter().map(|(t, v)| (t / scale, v)).collect();
            lines.push(Line { name: "total".into(), color: BLACK, width: 3, points });
        }
        let top = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(1.0, f64::max) * 1.1;
        // The legend gets a column of its own, so that it hides no line however many instances.
        let (area, legend) = area.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let mut builder = ChartBuilder::on(&area);
        builder.margin(15);
        if text {
            builder.caption(panel.title, ("sans-serif", 22)).x_label_area_size(40).y_label_area_size(70);
        }
        let mut plot = builder.build_cartesian_2d(0.0..end, 0.0..top)?;
        if text {
            plot.configure_mesh()
                .x_desc(unit)
                .y_desc(panel.unit)
                .x_label_formatter(&number)
                .y_label_formatter(&number)
                .light_line_style(WHITE)
                .draw()?;
        } else {
            // Without a font the mesh's labels cannot be laid out: a frame only.
            plot.plotting_area().draw(&Rectangle::new([(0.0, 0.0), (end, top)], BLACK))?;
        }
        for (i, line) in lines.into_iter().enumerate() {
            let style = line.color.stroke_width(line.width);
            plot.draw_series(LineSeries::new(line.points, style))?;
            if text {
                let y = 60 + 20 * i as i32;
                legend.draw(&PathElement::new([(0, y), (24, y)], style))?;
                legend.draw(&Text::new(line.name, (32, y - 8), ("sans-serif", 15)))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

/// An axis label: whole numbers without a fraction.
fn number(v: &f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Registers a TrueType font for the charts' text (plotters lays text out with ab_glyph and has
/// no font of its own; a system font library would be a build dependency). False if none.
fn load_font() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let Some(path) = find_font() else { return false };
        let Ok(bytes) = std::fs::read(&path) else { return false };
        // plotters keeps the font for the whole process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    })
}

/// DejaVu Sans where Debian and Ubuntu put it, else the first regular sans `.ttf` found, else
/// any `.ttf`.
fn find_font() -> Option<PathBuf> {
    let dejavu = Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf");
    if dejavu.is_file() {
        return Some(dejavu.to_path_buf());
    }
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/usr/share/fonts"), PathBuf::from("/usr/local/share/fonts")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("ttf")) {
                found.push(path);
            }
        }
    }
    found.sort();
    let regular_sans = |p: &PathBuf| {
        let name = p.file_name().unwrap_or_default().to_string_lossy().to_lowercase();
        name.contains("sans") && !["bold", "italic", "oblique", "mono", "light"].iter().any(|s| name.contains(s))
    };
    found.iter().find(|p| regular_sans(p)).or(found.first()).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "# relative_time, cycles_done, cur_item, corpus_count, pending_total, pending_favs, map_size, saved_crashes, saved_hangs, max_depth, execs_per_sec, total_execs, edges_found\n";

    #[test]
    fn parse_skips_the_header_and_a_truncated_last_line() {
        let text = format!(
            "{HEADER}0, 0, 2, 118, 117, 22, 29.81%, 2, 1, 2, 4510.53, 721, 248\n\
             6, 0, 86, 186, 165, 77, 39.18%, 29, 6, 2, 3271.95, 20332, 326\n\
             11, 0, 122, 211, 167, 80, 40.99%, 41, 11, 3, 3106.17, 35629, 34"
        );
        let rows = parse(&text);
        assert_eq!(
            rows,
            [
                Row { secs: 0.0, paths: 118.0, crashes: 2.0, hangs: 1.0, execs_per_sec: 4510.53 },
                // The interval's own speed, not the file's average since the start.
                Row { secs: 6.0, paths: 186.0, crashes: 29.0, hangs: 6.0, execs_per_sec: (20332.0 - 721.0) / 6.0 },
            ]
        );
        assert!(parse(HEADER).is_empty());
        assert!(parse("").is_empty());
    }

    #[test]
    fn a_resumed_run_continues_after_the_earlier_rows() {
        let text = format!(
            "{HEADER}10, 0, 0, 5, 0, 0, 1%, 0, 0, 1, 100, 1000, 9\n0, 0, 0, 6, 0, 0, 1%, 0, 0, 1, 90, 1100, 9\n5, 0, 0, 7, 0, 0, 1%, 0, 0, 1, 80, 1500, 9\n"
        );
        let secs: Vec<f64> = parse(&text).iter().map(|r| r.secs).collect();
        assert_eq!(secs, [10.0, 10.0, 15.0]);
        let speeds: Vec<f64> = parse(&text).iter().map(|r| r.execs_per_sec).collect();
        assert_eq!(speeds, [100.0, 90.0, 80.0]);
    }

    #[test]
    fn the_total_holds_each_instances_latest_row() {
        let row = |secs, paths| Row { secs, paths, crashes: 0.0, hangs: 0.0, execs_per_sec: 0.0 };
        let instances = [
            Instance { name: "fuzz0".into(), rows: vec![row(0.0, 10.0), row(5.0, 20.0)] },
            Instance { name: "fuzz0-asan".into(), rows: vec![row(2.0, 1.0), row(7.0, 3.0)] },
        ];
        assert_eq!(total(&instances, |r| r.paths), [(0.0, 10.0), (2.0, 11.0), (5.0, 21.0), (7.0, 23.0)]);
    }

    #[test]
    fn without_a_font_the_charts_are_drawn_without_text() {
        let row = |secs, paths| Row { secs, paths, crashes: 1.0, hangs: 0.0, execs_per_sec: 50.0 };
        let instances = [Instance { name: "fuzz0".into(), rows: vec![row(0.0, 10.0), row(5.0, 20.0)] }];
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let (png, svg) = (dir.join("paths.png"), dir.join("paths.svg"));
        draw(BitMapBackend::new(&png, SIZE).into_drawing_area(), &CHARTS[1], &instances, false).unwrap();
        draw(SVGBackend::new(&svg, SIZE).into_drawing_area(), &CHARTS[1], &instances, false).unwrap();
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
        let svg = std::fs::read_to_string(&svg).unwrap();
        assert!(svg.contains("<polyline") && !svg.contains("<text"), "{svg}");
    }
}
