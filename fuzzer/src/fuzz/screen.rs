//! The full-screen status on a terminal (ratatui): totals, a row per instance, how long since
//! the last new path, crash and hang, stability, the bugs triage found (once `triage.json`
//! exists), and the instances' own messages. `q` or Ctrl-C stops the campaign the way
//! `--stop-on-crash` does (the stop file), so every instance saves its state and the summary
//! follows; the terminal is given back when the screen is dropped (the broker's end), or on a
//! panic.

use super::snapshot::{clock, Snapshot};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::crossterm::{cursor, execute};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use ratatui::{Frame, Terminal};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the screen needs besides the snapshot.
pub struct Setup {
    /// The output folder.
    pub out: PathBuf,
    /// The instances' stdout and stderr, which would tear the screen (tail shown).
    pub log: PathBuf,
    /// Written to stop every instance.
    pub stop_file: PathBuf,
    /// The campaign's length, if it has one.
    pub duration: Option<Duration>,
    pub title: String,
}

pub struct Screen {
    snapshot: Arc<Mutex<Snapshot>>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Screen {
    /// Take over the terminal (raw mode, alternate screen); None, with a line saying why, when
    /// it cannot, and the plain status lines are shown instead.
    pub fn start(setup: Setup) -> Option<Screen> {
        if let Err(e) = terminal::enable_raw_mode() {
            println!("[fuzz] no live screen ({e}): status lines instead");
            return None;
        }
        let mut stdout = std::io::stdout();
        if let Err(e) = execute!(stdout, EnterAlternateScreen, cursor::Hide) {
            restore();
            println!("[fuzz] no live screen ({e}): status lines instead");
            return None;
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (snapshot, done) = (snapshot.clone(), done.clone());
            std::thread::spawn(move || draw_loop(&setup, &snapshot, &done))
        };
        Some(Screen { snapshot, done, thread: Some(thread) })
    }

    pub fn update(&self, snapshot: Snapshot) {
        if let Ok(mut s) = self.snapshot.lock() {
            *s = snapshot;
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        restore();
    }
}

/// Give the terminal back: main screen, cursor, cooked mode.
fn restore() {
    let _ = execute!(std::io::stdout(), LeaveAlternateScreen, cursor::Show);
    let _ = terminal::disable_raw_mode();
}

/// Redraw four times a second and read keys until the screen is dropped.
fn draw_loop(setup: &Setup, snapshot: &Mutex<Snapshot>, done: &AtomicBool) {
    let Ok(mut term) = Terminal::new(CrosstermBackend::new(std::io::stdout())) else { return };
    let mut stopping = false;
    while !done.load(Ordering::Relaxed) {
        let now = snapshot.lock().map(|s| s.clone()).unwrap_or_default();
        let bugs: Vec<String> =
            crate::bugs::listed(&setup.out).unwrap_or_default().lines().skip(1).map(|l| l.trim().to_string()).collect();
        let messages = tail(&setup.log, 16 * 1024);
        let _ = term.draw(|f| draw(f, setup, &now, &bugs, &messages, stopping));
        if event::poll(Duration::from_millis(250)).unwrap_or(false) {
            if let Ok(Event::Key(key)) = event::read() {
                let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                if key.kind == KeyEventKind::Press && (key.code == KeyCode::Char('q') || ctrl_c) && !stopping {
                    // "user": stopped by hand, which the end of the campaign tells from a crash.
                    let _ = std::fs::write(&setup.stop_file, b"user");
                    stopping = true;
                }
            }
        }
    }
}

fn draw(f: &mut Frame, setup: &Setup, s: &Snapshot, bugs: &[String], messages: &[String], stopping: bool) {
    let rows = s.instances.len() as u16;
    let bug_rows = if bugs.is_empty() { 0 } else { bugs.len().min(8) as u16 + 2 };
    let [title, top, instances, bug_area, log] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(8),
        Constraint::Length(rows + 3),
        Constraint::Length(bug_rows),
        Constraint::Min(3),
    ])
    .areas(f.area());

    let time = match setup.duration {
        Some(d) => format!("{} of {}", clock(s.run_time), clock(d.as_secs())),
        None => clock(s.run_time),
    };
    let hint = if stopping { "stopping: clients are saving their state..." } else { "q or Ctrl-C: stop" };
    f.render_widget(
        Line::from(vec![
            Span::styled(" pserv-fuzz ", Style::new().bold().reversed()),
            Span::raw(format!(" {} | run time {time} | ", setup.title)),
            Span::styled(hint, Style::new().fg(Color::Yellow)),
        ]),
        title,
    );

    let [overall, findings] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    let stability = s.stability().map_or("-".to_string(), |v| format!("{v:.2}%"));
    let label = |l: &str| Span::styled(format!("{l:<16}"), Style::new().fg(Color::Cyan));
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![label("executions"), Span::raw(format!("{} ({:.0}/s)", s.execs(), s.speed()))]),
            Line::from(vec![label("corpus"), Span::raw(s.corpus().to_string())]),
            Line::from(vec![label("edges"), Span::raw(s.edges().to_string())]),
            Line::from(vec![label("stability"), Span::raw(stability)]),
            Line::from(vec![label("cycles done"), Span::raw(s.cycles().to_string())]),
        ])
        .block(Block::bordered().title(" overall ")),
        overall,
    );
    let ago =
        |t: Option<u64>| t.map_or("none yet".to_string(), |t| format!("{} ago", clock(s.run_time.saturating_sub(t))));
    let red = |n: u64| if n > 0 { Style::new().fg(Color::Red).bold() } else { Style::new() };
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![label("crashes"), Span::styled(s.crashes().to_string(), red(s.crashes()))]),
            // Counted among the crashes (their files are in crashes/).
            Line::from(vec![label("  of them leaks"), Span::styled(s.leaks_text(), red(s.leaks().iter().sum()))]),
            Line::from(vec![label("hangs"), Span::styled(s.hangs().to_string(), red(s.hangs()))]),
            Line::from(vec![label("last new path"), Span::raw(ago(s.last_path()))]),
            Line::from(vec![label("last crash"), Span::raw(ago(s.last_crash()))]),
            Line::from(vec![label("last hang"), Span::raw(ago(s.last_hang()))]),
        ])
        .block(Block::bordered().title(" findings ")),
        findings,
    );

    let header =
        ["client", "execs/s", "execs", "corpus", "edges", "crashes", "hangs", "cycles", "stability", "last path"];
    let table = Table::new(
        s.instances.iter().map(|c| {
            Row::new(vec![
                Cell::from(c.name.clone()),
                Cell::from(format!("{:.0}", c.speed)),
                Cell::from(c.execs.to_string()),
                Cell::from(c.corpus.to_string()),
                Cell::from(c.edges.to_string()),
                Cell::from(Span::styled(c.crashes.to_string(), red(c.crashes))),
                Cell::from(Span::styled(c.hangs.to_string(), red(c.hangs))),
                Cell::from(c.cycles.to_string()),
                Cell::from(c.stability.map_or("-".to_string(), |v| format!("{v:.1}%"))),
                Cell::from(c.last_path.map_or("-".to_string(), |t| clock(s.run_time.saturating_sub(t)))),
            ])
        }),
        [10, 8, 10, 7, 6, 8, 6, 7, 9, 9].map(Constraint::Min),
    )
    .header(Row::new(header).style(Style::new().add_modifier(Modifier::BOLD)))
    .block(Block::bordered().title(" clients "));
    f.render_widget(table, instances);

    if !bugs.is_empty() {
        let lines: Vec<Line> = bugs.iter().take(8).map(|b| Line::raw(b.clone())).collect();
        f.render_widget(Paragraph::new(lines).block(Block::bordered().title(" bugs (fuzzer triage OUT) ")), bug_area);
    }

    let room = log.height.saturating_sub(2) as usize;
    let mut lines: Vec<Line> =
        messages[messages.len().saturating_sub(room)..].iter().map(|m| Line::raw(m.clone())).collect();
    if lines.is_empty() {
        lines.push(Line::styled(
            format!("(none yet: what the clients print goes here and to {})", setup.log.display()),
            Style::new().fg(Color::DarkGray),
        ));
    }
    f.render_widget(Paragraph::new(lines).block(Block::bordered().title(" messages ")), log);
}

/// The lines in the last `bytes` of `path`.
fn tail(path: &Path, bytes: u64) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else { return Vec::new() };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut raw = Vec::new();
    let _ = file.read_to_end(&mut raw);
    // A status line redrawn with `\r` keeps its last state.
    String::from_utf8_lossy(&raw)
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or(l).to_string())
        .filter(|l| !l.trim().is_empty())
        .collect()
}
