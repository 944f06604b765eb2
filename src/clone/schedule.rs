//! The data step's scheduling, over plain facts about units, tables and indexes (sizes,
//! flags) so that it is tested without a server: which units are copied and in what order
//! (largest first), which go together in one transaction (`take_batch`), when a table's
//! indexes may be built (once its last part commits) and as which jobs (`dispatch`), when a
//! table is finished (once its last index is built), and what a resumed run has left.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Tables smaller than this get all their indexes in one round trip (building them one by one
/// on several workers would save less time than the round trips cost over a wide-area link).
pub const SMALL_TABLE_BYTES: i64 = 16 << 20;
/// Whole tables smaller than this are copied several to a target transaction.
pub const BATCH_TABLE_BYTES: i64 = 2 << 20;
/// A batch holds at most this many tables and this many (estimated) bytes.
const BATCH_MAX_TABLES: usize = 32;
const BATCH_MAX_BYTES: i64 = 16 << 20;
/// At most this many small tables' indexes go in one round trip.
const INDEX_BATCH_MAX_TABLES: usize = 32;

/// What scheduling knows of a unit of copy work.
#[derive(Debug, Clone, Copy)]
pub struct UnitFacts {
    /// Its table's place in the catalog.
    pub table: usize,
    pub est_bytes: i64,
    /// A small whole table, copied with others in one transaction (see BATCH_TABLE_BYTES).
    pub batchable: bool,
    /// Copied by an earlier run.
    pub copied: bool,
}

/// What scheduling knows of a table.
#[derive(Debug, Clone, Copy)]
pub struct TableFacts {
    /// Its indexes and constraints are built in one go (see SMALL_TABLE_BYTES).
    pub small: bool,
    /// Indexed and analyzed by an earlier run.
    pub finished: bool,
}

/// What scheduling knows of an index.
#[derive(Debug, Clone, Copy)]
pub struct IndexFacts {
    pub table: usize,
    /// A plain index, built on its own before the table's constraints.
    pub built_first: bool,
    /// Built by an earlier run.
    pub built: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexJob {
    /// CREATE INDEX of one index.
    Build(usize),
    /// Constraints, CLUSTER ON, REPLICA IDENTITY and ANALYZE of one table.
    Finish(usize),
    /// All of a small table's indexes, constraints and ANALYZE in one round trip.
    Small(usize),
}

/// The state of the data step's work, shared by its workers.
pub struct Schedule {
    pub units: Vec<UnitFacts>,
    tables: Vec<TableFacts>,
    indexes: Vec<IndexFacts>,
    skip_vacuum: bool,
    /// Each table's indexes.
    by_table: HashMap<usize, Vec<usize>>,
    /// Parts still to copy, per table that has units.
    parts_left: HashMap<usize, AtomicUsize>,
    /// Index builds still to do, per table.
    builds_left: Vec<AtomicUsize>,
}

impl Schedule {
    pub fn new(
        units: Vec<UnitFacts>,
        tables: Vec<TableFacts>,
        indexes: Vec<IndexFacts>,
        skip_vacuum: bool,
    ) -> Schedule {
        let mut by_table: HashMap<usize, Vec<usize>> = HashMap::new();
        for (j, index) in indexes.iter().enumerate() {
            by_table.entry(index.table).or_default().push(j);
        }
        let mut parts_left: HashMap<usize, AtomicUsize> = HashMap::new();
        for u in &units {
            let left = parts_left.entry(u.table).or_default();
            if !u.copied {
                *left.get_mut() += 1;
            }
        }
        let mut schedule = Schedule {
            builds_left: (0..tables.len()).map(|_| AtomicUsize::new(0)).collect(),
            units,
            tables,
            indexes,
            skip_vacuum,
            by_table,
            parts_left,
        };
        // All of a table's builds, unless an earlier run did some.
        for t in 0..schedule.tables.len() {
            let left = schedule.builds(t, true).len();
            *schedule.builds_left[t].get_mut() = left;
        }
        schedule
    }

    /// The units to copy, largest first.
    pub fn copy_queue(&self) -> Vec<usize> {
        let mut queue: Vec<usize> = (0..self.units.len())
            .filter(|k| !self.units[*k].copied)
            .collect();
        queue.sort_by_key(|k| std::cmp::Reverse(self.units[*k].est_bytes));
        queue
    }

    /// The index jobs of the tables an earlier run copied but did not finish.
    pub fn resumed_jobs(&self) -> Vec<IndexJob> {
        let mut jobs = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            let copied = self
                .parts_left
                .get(&t)
                .is_some_and(|n| n.load(Ordering::Relaxed) == 0);
            if copied && !table.finished {
                jobs.extend(self.dispatch(t, self.builds(t, true), true));
            }
        }
        jobs
    }

    /// A unit committed: once it is its table's last, the table's index jobs.
    pub fn unit_copied(&self, unit: usize) -> Vec<IndexJob> {
        let t = self.units[unit].table;
        if self.parts_left[&t].fetch_sub(1, Ordering::AcqRel) != 1 {
            // Other parts of the table are still to come.
            return Vec::new();
        }
        // The table's rows are committed (all of them again): every index is built.
        let builds = self.builds(t, false);
        self.builds_left[t].store(builds.len(), Ordering::Release);
        self.dispatch(t, builds, false)
    }

    /// An index is built: once it is its table's last, the table, to finish.
    pub fn index_built(&self, j: usize) -> Option<usize> {
        let t = self.indexes[j].table;
        (self.builds_left[t].fetch_sub(1, Ordering::AcqRel) == 1).then_some(t)
    }

    pub fn table_of(&self, j: usize) -> usize {
        self.indexes[j].table
    }

    pub fn indexes_of(&self, t: usize) -> &[usize] {
        self.by_table.get(&t).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A table's plain indexes (`unbuilt`: only those no earlier run built).
    fn builds(&self, t: usize, unbuilt: bool) -> Vec<usize> {
        let index = |j: &usize| self.indexes[*j];
        self.indexes_of(t)
            .iter()
            .copied()
            .filter(|j| index(j).built_first && !(unbuilt && index(j).built))
            .collect()
    }

    fn dispatch(&self, t: usize, builds: Vec<usize>, resumed: bool) -> Vec<IndexJob> {
        let has_indexes = self.by_table.contains_key(&t);
        dispatch(
            t,
            builds,
            has_indexes,
            self.skip_vacuum,
            resumed,
            self.tables[t].small,
        )
    }
}

/// The index jobs of a copied table: all at once when it is small, else its index builds,
/// or straight the finishing step when there is nothing to build.
pub fn dispatch(
    table: usize,
    builds: Vec<usize>,
    has_indexes: bool,
    skip_vacuum: bool,
    resumed: bool,
    small: bool,
) -> Vec<IndexJob> {
    if small && (has_indexes || !skip_vacuum) {
        vec![IndexJob::Small(table)]
    } else if !builds.is_empty() {
        builds.into_iter().map(IndexJob::Build).collect()
    } else if has_indexes || !skip_vacuum || resumed {
        vec![IndexJob::Finish(table)]
    } else {
        Vec::new()
    }
}

/// The units a copy worker takes after `first`, taken from the front of `queue`: `first`
/// alone, or with more small whole tables, copied in one target transaction with their round
/// trips pipelined (over a wide-area link the round trips, not the bytes, are what small
/// tables cost). Batches shrink towards the end of the queue so that each of the `workers`
/// keeps some work.
pub fn take_batch(
    first: usize,
    queue: &mut VecDeque<usize>,
    units: &[UnitFacts],
    workers: usize,
) -> Vec<usize> {
    let mut batch = vec![first];
    if !units[first].batchable {
        return batch;
    }
    let cap = (queue.len() + 1)
        .div_ceil(2 * workers.max(1))
        .clamp(1, BATCH_MAX_TABLES);
    let mut bytes = units[first].est_bytes.max(0);
    while batch.len() < cap {
        let Some(&k) = queue.front() else { break };
        let unit = &units[k];
        if !unit.batchable || bytes + unit.est_bytes.max(0) > BATCH_MAX_BYTES {
            break;
        }
        bytes += unit.est_bytes.max(0);
        batch.push(k);
        queue.pop_front();
    }
    batch
}

/// The small tables whose indexes an index worker builds in one round trip with `first`'s:
/// those waiting at the front of `queue`, shared out between the `workers`.
pub fn small_batch(first: usize, queue: &mut VecDeque<IndexJob>, workers: usize) -> Vec<usize> {
    let cap = (queue.len() / workers.max(1) + 1).clamp(1, INDEX_BATCH_MAX_TABLES);
    let mut tables = vec![first];
    while tables.len() < cap {
        let Some(&IndexJob::Small(t)) = queue.front() else {
            break;
        };
        queue.pop_front();
        tables.push(t);
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;
    use IndexJob::*;

    fn unit(table: usize, est_bytes: i64) -> UnitFacts {
        UnitFacts {
            table,
            est_bytes,
            batchable: est_bytes < BATCH_TABLE_BYTES,
            copied: false,
        }
    }

    fn table(small: bool) -> TableFacts {
        TableFacts {
            small,
            finished: false,
        }
    }

    fn plain(table: usize) -> IndexFacts {
        IndexFacts {
            table,
            built_first: true,
            built: false,
        }
    }

    fn constraint(table: usize) -> IndexFacts {
        IndexFacts {
            built_first: false,
            ..plain(table)
        }
    }

    #[test]
    fn largest_first_and_copied_units_left_out() {
        let mut units = vec![unit(0, 10), unit(1, 300), unit(2, 20), unit(3, 300)];
        units[2].copied = true;
        let s = Schedule::new(units, vec![table(false); 4], vec![], true);
        // Equal sizes keep their order.
        assert_eq!(s.copy_queue(), [1, 3, 0]);
    }

    #[test]
    fn small_tables_are_batched_and_batches_shrink_towards_the_end() {
        let units: Vec<UnitFacts> = (0..100).map(|t| unit(t, 1000)).collect();
        let mut queue: VecDeque<usize> = (1..100).collect();
        // 100 units for 2 workers: a quarter of them.
        assert_eq!(take_batch(0, &mut queue, &units, 2).len(), 25);
        assert_eq!(queue.len(), 75);
        assert_eq!(queue.front(), Some(&25));
        let mut queue: VecDeque<usize> = (1..4).collect();
        assert_eq!(take_batch(0, &mut queue, &units, 2), [0]);
        // Never more than BATCH_MAX_TABLES.
        let units: Vec<UnitFacts> = (0..1000).map(|t| unit(t, 10)).collect();
        let mut queue: VecDeque<usize> = (1..1000).collect();
        assert_eq!(take_batch(0, &mut queue, &units, 1).len(), BATCH_MAX_TABLES);
    }

    #[test]
    fn a_batch_stops_at_a_big_unit_or_its_byte_limit() {
        let mut units: Vec<UnitFacts> = (0..40).map(|t| unit(t, 1000)).collect();
        units[3] = unit(3, BATCH_TABLE_BYTES);
        let mut queue: VecDeque<usize> = (1..40).collect();
        assert_eq!(take_batch(0, &mut queue, &units, 1), [0, 1, 2]);
        assert_eq!(queue.front(), Some(&3));
        // A big unit goes alone.
        queue.pop_front();
        assert_eq!(take_batch(3, &mut queue, &units, 1), [3]);
        // Bytes: 1.5 MB each, at most 16 MB together.
        let units: Vec<UnitFacts> = (0..40).map(|t| unit(t, 3 << 19)).collect();
        let mut queue: VecDeque<usize> = (1..40).collect();
        assert_eq!(take_batch(0, &mut queue, &units, 1).len(), 10);
        // A part of a split table (not batchable) is never batched.
        let mut units: Vec<UnitFacts> = (0..40).map(|t| unit(t, 10)).collect();
        units[0].batchable = false;
        let mut queue: VecDeque<usize> = (1..40).collect();
        assert_eq!(take_batch(0, &mut queue, &units, 1), [0]);
    }

    #[test]
    fn dispatch_chooses_small_builds_or_finish() {
        // A small table: everything in one job, unless there is nothing to do at all.
        assert_eq!(dispatch(5, vec![1], true, false, false, true), [Small(5)]);
        assert_eq!(dispatch(5, vec![], false, false, false, true), [Small(5)]);
        assert_eq!(dispatch(5, vec![], false, true, false, true), []);
        // A big table: its builds, else its finishing step.
        assert_eq!(
            dispatch(5, vec![1, 2], true, false, false, false),
            [Build(1), Build(2)]
        );
        assert_eq!(dispatch(5, vec![], true, true, false, false), [Finish(5)]);
        assert_eq!(dispatch(5, vec![], false, false, false, false), [Finish(5)]);
        assert_eq!(dispatch(5, vec![], false, true, false, false), []);
        // Resumed, its table is marked finished even with nothing to do.
        assert_eq!(dispatch(5, vec![], false, true, true, false), [Finish(5)]);
    }

    #[test]
    fn indexes_wait_for_the_last_part_and_finish_after_the_last_build() {
        // Table 0 in three parts, with two plain indexes and a constraint.
        let units = vec![unit(0, 1 << 30), unit(0, 1 << 30), unit(0, 1 << 30)];
        let indexes = vec![plain(0), constraint(0), plain(0)];
        let s = Schedule::new(units, vec![table(false)], indexes, false);
        assert_eq!(s.resumed_jobs(), []);
        assert_eq!(s.unit_copied(0), []);
        assert_eq!(s.unit_copied(2), []);
        assert_eq!(s.unit_copied(1), [Build(0), Build(2)]);
        assert_eq!(s.index_built(2), None);
        assert_eq!(s.index_built(0), Some(0));
        assert_eq!(s.indexes_of(0), [0, 1, 2]);
        assert_eq!(s.table_of(1), 0);
    }

    #[test]
    fn a_table_without_indexes_is_analyzed_unless_vacuum_is_skipped() {
        let s = Schedule::new(vec![unit(0, 1 << 30)], vec![table(false)], vec![], false);
        assert_eq!(s.unit_copied(0), [Finish(0)]);
        let s = Schedule::new(vec![unit(0, 1 << 30)], vec![table(false)], vec![], true);
        assert_eq!(s.unit_copied(0), []);
        let s = Schedule::new(vec![unit(0, 10)], vec![table(true)], vec![plain(0)], true);
        assert_eq!(s.unit_copied(0), [Small(0)]);
    }

    #[test]
    fn a_resumed_run_does_what_is_left() {
        // Table 0: copied, one of its two indexes built. Table 1: copied and finished.
        // Table 2: one part of two copied. Table 3: copied, no indexes.
        let mut units = vec![unit(0, 100), unit(1, 100), unit(2, 100), unit(2, 100)];
        units.push(unit(3, 100));
        for k in [0, 1, 2, 4] {
            units[k].copied = true;
        }
        let mut tables = vec![table(false); 4];
        tables[1].finished = true;
        let mut indexes = vec![plain(0), plain(0), plain(1), plain(2)];
        indexes[0].built = true;
        let s = Schedule::new(units, tables, indexes, true);
        assert_eq!(s.copy_queue(), [3]);
        assert_eq!(s.resumed_jobs(), [Build(1), Finish(3)]);
        assert_eq!(s.index_built(1), Some(0));
        // Table 2's last part: its index is built (again: its rows were copied again).
        assert_eq!(s.unit_copied(3), [Build(3)]);
    }

    #[test]
    fn small_tables_indexes_are_shared_out() {
        let mut queue: VecDeque<IndexJob> = (1..9).map(Small).collect();
        queue.push_back(Build(0));
        // 9 waiting for 3 workers: 3 more with the first.
        assert_eq!(small_batch(0, &mut queue, 3), [0, 1, 2, 3]);
        assert_eq!(queue.pop_front(), Some(Small(4)));
        assert_eq!(small_batch(4, &mut queue, 1), [4, 5, 6, 7, 8]);
        // A job of another kind stays in the queue.
        assert_eq!(queue, [Build(0)]);
        let mut queue = VecDeque::new();
        assert_eq!(small_batch(0, &mut queue, 3), [0]);
    }
}
