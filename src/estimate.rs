//! One estimate of the data step, shared by everything that shows it: `check`, the progress
//! bars, `list progress` and the summary compute what COPY will move and what work is left from
//! the same numbers, in the same way.
//!
//! Before a table is copied, the only measure of it is its size on disk at the source
//! (`pg_table_size`: heap and TOAST). COPY moves a different number of bytes (text is often
//! smaller than the heap, binary about as large), so once tables finish, the bytes they moved
//! per byte on disk scale the estimate of the ones still to come.
//!
//! The ETA covers the whole data step, copies and index builds: each table's work is its size
//! on disk, each index's its size on disk at the source, and the rate is the work finished per
//! second lately.

use serde::Serialize;

/// Where the data step stands, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct Tally {
    /// Bytes COPY moved for the units (tables or parts) that are done.
    pub done_copied: u64,
    /// Size on disk at the source of the units that are done.
    pub done_disk: u64,
    /// Bytes moved so far by the units being copied.
    pub in_flight: u64,
    /// Size on disk at the source of every unit to copy, done or not.
    pub total_disk: u64,
    /// Size on disk at the source of the indexes (and constraints' indexes) built.
    pub index_done: u64,
    /// Size on disk at the source of every index to build.
    pub index_total: u64,
}

impl Tally {
    /// Bytes COPY moves per byte on disk, as seen in the units done: 1 until they hold a
    /// twentieth of the data, as a few small tables (whose size on disk is mostly a page's
    /// overhead) say little about the big ones.
    pub fn ratio(&self) -> f64 {
        if self.done_disk > 0 && self.done_copied > 0 && self.done_disk * 20 >= self.total_disk {
            self.done_copied as f64 / self.done_disk as f64
        } else {
            1.0
        }
    }

    /// Bytes moved so far, finished units and those under way.
    pub fn copied(&self) -> u64 {
        self.done_copied + self.in_flight
    }

    /// What COPY will have moved in all: measured for the units done, estimated for the rest.
    pub fn copy_total(&self) -> u64 {
        let pending = self.total_disk.saturating_sub(self.done_disk) as f64;
        ((self.done_copied as f64 + pending * self.ratio()) as u64).max(self.copied())
    }

    /// Whether `copy_total` is still partly an estimate.
    pub fn estimated(&self) -> bool {
        self.done_disk < self.total_disk
    }

    /// Work finished, in bytes on disk at the source: units copied (those under way in
    /// proportion) and indexes built.
    pub fn work_done(&self) -> f64 {
        let pending = self.total_disk.saturating_sub(self.done_disk) as f64;
        let under_way = (self.in_flight as f64 / self.ratio()).min(pending);
        self.done_disk as f64 + under_way + self.index_done as f64
    }

    /// All the work of the data step, in bytes on disk at the source.
    pub fn work_total(&self) -> f64 {
        (self.total_disk + self.index_total) as f64
    }

    /// Seconds left at `rate` (work per second), when there is a rate to go by.
    pub fn eta(&self, rate: Option<f64>) -> Option<f64> {
        let rate = rate.filter(|r| *r > 0.0)?;
        Some((self.work_total() - self.work_done()).max(0.0) / rate)
    }
}

/// The rate of work over a window of samples `(seconds, work done)`, oldest first: the last
/// sample against the oldest within `window` seconds of it.
pub fn rate(samples: &[(f64, f64)], window: f64) -> Option<f64> {
    let (t1, w1) = *samples.last()?;
    let (t0, w0) = *samples.iter().find(|(t, _)| *t >= t1 - window)?;
    (t1 - t0 >= 1.0).then(|| ((w1 - w0).max(0.0)) / (t1 - t0))
}

/// The window the rates are measured over, in seconds.
pub const RATE_WINDOW: f64 = 20.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_anything_is_done_the_estimate_is_the_size_on_disk() {
        let t = Tally {
            total_disk: 1000,
            index_total: 500,
            ..Default::default()
        };
        assert_eq!(t.copy_total(), 1000);
        assert!(t.estimated());
        assert_eq!(t.work_done(), 0.0);
        assert_eq!(t.eta(Some(100.0)), Some(15.0));
        assert_eq!(t.eta(None), None);
    }

    #[test]
    fn finished_units_scale_the_rest() {
        // Half done, and it moved 0.8 bytes per byte on disk.
        let t = Tally {
            done_copied: 400,
            done_disk: 500,
            in_flight: 80,
            total_disk: 1000,
            index_done: 100,
            index_total: 300,
        };
        assert_eq!(t.copy_total(), 800);
        assert_eq!(t.copied(), 480);
        // 500 done, 100 of the 500 pending under way, 100 of index work.
        assert_eq!(t.work_done(), 700.0);
        assert_eq!(t.eta(Some(60.0)), Some(10.0));
    }

    #[test]
    fn when_everything_is_copied_the_total_is_what_was_moved() {
        let t = Tally {
            done_copied: 1234,
            done_disk: 1000,
            total_disk: 1000,
            index_total: 10,
            ..Default::default()
        };
        assert_eq!(t.copy_total(), 1234);
        assert!(!t.estimated());
        // The indexes are still to build: the ETA is not zero.
        assert_eq!(t.eta(Some(1.0)), Some(10.0));
    }

    #[test]
    fn a_few_small_tables_do_not_scale_the_big_ones() {
        let t = Tally {
            done_copied: 10,
            done_disk: 40,
            total_disk: 1000,
            ..Default::default()
        };
        assert_eq!(t.ratio(), 1.0);
        assert_eq!(t.copy_total(), 970);
    }

    #[test]
    fn the_total_never_falls_below_what_was_moved() {
        let t = Tally {
            in_flight: 5000,
            total_disk: 1000,
            ..Default::default()
        };
        assert_eq!(t.copy_total(), 5000);
        assert_eq!(t.work_done(), 1000.0);
    }

    #[test]
    fn rates_come_from_the_window() {
        let s = [(0.0, 0.0), (10.0, 100.0), (20.0, 300.0), (30.0, 500.0)];
        assert_eq!(rate(&s, 20.0), Some(20.0));
        assert_eq!(rate(&s[..1], 20.0), None);
        assert_eq!(rate(&[], 20.0), None);
    }
}
