//! Progress bars on a terminal: the bytes copied with rate and ETA, one line per busy worker,
//! and the index builds. Log lines are printed above the bars without tearing them. Without a
//! terminal (CI, pipes) there are no bars, only the log lines.

use crate::estimate;
use crate::fmt;
use crate::state::Live;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The target of the log lines about one table (or part) at a time: shown in plain and JSON
/// logs, but not above the bars, where a hundred small tables would scroll a hundred lines.
pub const TABLE_LOG: &str = "neoncopy::table";

/// The bars being drawn, if any: log lines go through it.
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Whether bars should be drawn: stderr is a terminal and the user did not ask for quiet.
pub fn wanted(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal() && std::env::var_os("NEONCOPY_NO_BARS").is_none()
}

/// The writer tracing logs through: straight to stderr, or above the bars while they show.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let line = std::mem::take(&mut self.0);
        let write = || {
            let _ = std::io::stderr().lock().write_all(&line);
        };
        match ACTIVE.lock().ok().and_then(|a| a.clone()) {
            Some(multi) => multi.suspend(write),
            None => write(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> Self::Writer {
        LogLine(Vec::new())
    }
}

/// Bars for the data step, refreshed from the shared live state until dropped.
pub struct DataBars {
    multi: MultiProgress,
    task: tokio::task::JoinHandle<()>,
}

impl DataBars {
    /// Starts drawing what `live` says: bytes copied against the estimate of the total
    /// (`crate::estimate`), rows, and the time left for the copies and the index builds.
    pub fn start(live: Arc<Live>, indexes: u64) -> DataBars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5));
        let overall = multi.add(ProgressBar::new(1));
        overall.set_style(
            ProgressStyle::with_template(
                "COPY    [{bar:30}] {bytes}/{prefix}{total_bytes} {binary_bytes_per_sec}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let index_bar = multi.add(ProgressBar::new(indexes));
        index_bar.set_style(
            ProgressStyle::with_template("INDEXES [{bar:30}] {pos}/{len}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        *ACTIVE.lock().expect("bars lock") = Some(multi.clone());
        let multi2 = multi.clone();
        let task = tokio::spawn(async move {
            let mut lines: BTreeMap<String, ProgressBar> = BTreeMap::new();
            let style = ProgressStyle::with_template("  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let started = std::time::Instant::now();
            let mut samples: std::collections::VecDeque<(f64, f64)> = Default::default();
            loop {
                let tally = live.tally();
                let at = started.elapsed().as_secs_f64();
                samples.push_back((at, tally.work_done()));
                while samples
                    .front()
                    .is_some_and(|(t, _)| *t < at - estimate::RATE_WINDOW - 1.0)
                {
                    samples.pop_front();
                }
                let rate = estimate::rate(samples.make_contiguous(), estimate::RATE_WINDOW);
                overall.set_length(tally.copy_total().max(1));
                overall.set_position(tally.copied());
                overall.set_prefix(if tally.estimated() { "~" } else { "" });
                let mut msg = format!("{} rows", fmt::count(live.rows()));
                if let Some(eta) = tally.eta(rate) {
                    msg.push_str(&format!(", about {} left", fmt::duration(eta)));
                }
                overall.set_message(msg);
                index_bar.set_position(live.indexes_done.load(Ordering::Relaxed));
                let now: BTreeMap<String, String> = live
                    .workers
                    .lock()
                    .map(|w| {
                        w.iter()
                            .map(|(name, w)| {
                                let bytes = w
                                    .counters
                                    .as_ref()
                                    .map(|c| {
                                        format!("  {}", fmt::bytes(c.bytes.load(Ordering::Relaxed)))
                                    })
                                    .unwrap_or_default();
                                (name.clone(), format!("{name:<8} {}{bytes}", w.what))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                lines.retain(|name, bar| {
                    let keep = now.contains_key(name);
                    if !keep {
                        bar.finish_and_clear();
                        multi2.remove(bar);
                    }
                    keep
                });
                for (name, msg) in now {
                    let bar = lines.entry(name).or_insert_with(|| {
                        let b = multi2.add(ProgressBar::new_spinner());
                        b.set_style(style.clone());
                        b
                    });
                    bar.set_message(msg);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        DataBars { multi, task }
    }
}

impl Drop for DataBars {
    fn drop(&mut self) {
        self.task.abort();
        *ACTIVE.lock().expect("bars lock") = None;
        let _ = self.multi.clear();
    }
}
