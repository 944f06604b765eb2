//! Lanes: the schema's entries in groups that can be created side by side, each group in a
//! transaction of its own on a session of its own.
//!
//! The target spends most of a many-table schema's pre-data on each object alone (its catalog
//! rows, its files), one statement after the other on one core; two objects that do not
//! depend on each other need not wait for each other. Entries linked by a dependency of the
//! archive's table of contents (pg_dump's, from `pg_depend`: a table on its schema, its types,
//! its sequences; a comment on its object), either way, are in one group, and a group is never
//! split: whatever an entry needs is created before it, in its own transaction. Groups are
//! dealt to the lanes largest first, each to the lane with the fewest entries so far.
//!
//! Lanes must not wait for each other's locks: a lane that has run its part waits, its
//! transaction open, for the others before committing. Kinds known to lock a whole catalog
//! share a lane; for whatever else may, a lane of a rehearsal gives up waiting for a lock
//! after `LOCK_WAIT` (and the rehearsal then runs in one transaction).

use crate::pg::archive::Entry;
use std::collections::{HashMap, HashSet};

/// Entry kinds that only set up the session: pg_restore writes them at the top of every
/// script, so every lane has them.
pub const SESSION_KINDS: &[&str] = &["ENCODING", "STDSTRINGS", "SEARCHPATH"];

/// How long a lane of a rehearsal waits for a lock (`lock_timeout`): what another lane holds
/// is only let go at the commit, which waits for this lane.
pub const LOCK_WAIT: &str = "2s";

/// Entry kinds whose statements lock a whole catalog until the transaction ends (CREATE
/// COLLATION takes `pg_collation` in SHARE ROW EXCLUSIVE mode): all of them go in one lane, or
/// a lane would wait for another that waits for the commit.
const CATALOG_LOCKING_KINDS: &[&str] = &["COLLATION"];

/// The dump ids of `ids` in at most `n` lanes, session kinds in none; no empty lane. One lane
/// when everything is linked.
pub fn lanes(entries: &[Entry], ids: &HashSet<u32>, n: usize) -> Vec<HashSet<u32>> {
    let members: Vec<&Entry> = entries
        .iter()
        .filter(|e| ids.contains(&e.dump_id) && !SESSION_KINDS.contains(&&*e.desc))
        .collect();
    let index: HashMap<u32, usize> = members
        .iter()
        .enumerate()
        .map(|(i, e)| (e.dump_id, i))
        .collect();
    let mut sets = DisjointSets::new(members.len());
    let mut catalog_locking: Option<usize> = None;
    for (i, e) in members.iter().enumerate() {
        for dep in e.dependencies.iter() {
            if let Some(&j) = index.get(dep) {
                sets.union(i, j);
            }
        }
        if CATALOG_LOCKING_KINDS.contains(&&*e.desc) {
            match catalog_locking {
                Some(first) => sets.union(first, i),
                None => catalog_locking = Some(i),
            }
        }
    }
    let mut groups: HashMap<usize, Vec<u32>> = HashMap::new();
    for (i, e) in members.iter().enumerate() {
        groups.entry(sets.find(i)).or_default().push(e.dump_id);
    }
    let mut groups: Vec<Vec<u32>> = groups.into_values().collect();
    // Largest first; equal sizes in archive order, so that the lanes are the same run to run.
    groups.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    let mut lanes: Vec<HashSet<u32>> = vec![HashSet::new(); n.max(1).min(groups.len().max(1))];
    for group in groups {
        let lightest = (0..lanes.len())
            .min_by_key(|&k| lanes[k].len())
            .expect("at least one lane");
        lanes[lightest].extend(group);
    }
    lanes.retain(|l| !l.is_empty());
    lanes
}

/// Union-find over `0..n`, with path halving and union by size.
struct DisjointSets {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> DisjointSets {
        DisjointSets {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        let (big, small) = if self.size[a] >= self.size[b] {
            (a, b)
        } else {
            (b, a)
        };
        self.parent[small] = big;
        self.size[big] += self.size[small];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::archive::Section;
    use std::sync::Arc;

    fn entry(dump_id: u32, desc: &str, deps: &[u32]) -> Entry {
        Entry {
            dump_id,
            catalog_oid: 0,
            oid: 0,
            tag: format!("e{dump_id}"),
            desc: Arc::from(desc),
            section: Section::PreData,
            placed: Section::PreData,
            defn: None,
            namespace: Arc::from(""),
            tablespace: None,
            owner: Arc::from(""),
            dependencies: deps.to_vec().into_boxed_slice(),
        }
    }

    #[test]
    fn linked_entries_share_a_lane() {
        // Two schemas, each with a table, a sequence it owns and a comment; a type used by a
        // table of the second schema only; session entries; one entry not asked for.
        let toc = vec![
            entry(1, "ENCODING", &[]),
            entry(2, "SCHEMA", &[]),
            entry(3, "SCHEMA", &[]),
            entry(4, "TYPE", &[3]),
            entry(5, "TABLE", &[2]),
            entry(6, "SEQUENCE", &[2]),
            entry(7, "SEQUENCE OWNED BY", &[5, 6]),
            entry(8, "TABLE", &[3, 4]),
            entry(9, "COMMENT", &[8]),
            entry(10, "TABLE", &[]),
            entry(11, "TABLE", &[10]),
        ];
        let ids: HashSet<u32> = (1..=10).collect();
        let lanes = lanes(&toc, &ids, 2);
        assert_eq!(lanes.len(), 2);
        let lane_of = |id: u32| lanes.iter().position(|l| l.contains(&id));
        assert_eq!(lane_of(1), None, "session entries go in every script");
        assert_eq!(lane_of(11), None, "not asked for");
        for group in [&[2, 5, 6, 7][..], &[3, 4, 8, 9]] {
            assert!(group.iter().all(|&id| lane_of(id) == lane_of(group[0])));
        }
        assert_ne!(lane_of(2), lane_of(3));
        // The lone table goes to a lane, whichever had fewer entries.
        assert!(lane_of(10).is_some());
        assert_eq!(lanes.iter().map(HashSet::len).sum::<usize>(), 9);
    }

    #[test]
    fn collations_share_a_lane() {
        let toc = vec![
            entry(1, "SCHEMA", &[]),
            entry(2, "COLLATION", &[1]),
            entry(3, "SCHEMA", &[]),
            entry(4, "COLLATION", &[3]),
            entry(5, "TABLE", &[]),
        ];
        let ids: HashSet<u32> = (1..=5).collect();
        let lanes = lanes(&toc, &ids, 3);
        assert_eq!(lanes.len(), 2);
        assert!(lanes
            .iter()
            .any(|l| [1, 2, 3, 4].iter().all(|id| l.contains(id))));
    }

    #[test]
    fn one_lane_when_everything_is_linked_or_one_is_asked() {
        let toc = vec![
            entry(1, "SCHEMA", &[]),
            entry(2, "TABLE", &[1]),
            entry(3, "TABLE", &[1]),
        ];
        let ids: HashSet<u32> = (1..=3).collect();
        assert_eq!(lanes(&toc, &ids, 4).len(), 1);
        let toc = vec![entry(1, "TABLE", &[]), entry(2, "TABLE", &[])];
        let ids: HashSet<u32> = (1..=2).collect();
        assert_eq!(lanes(&toc, &ids, 1).len(), 1);
        assert_eq!(lanes(&toc, &ids, 8).len(), 2);
        assert!(lanes(&toc, &HashSet::new(), 2).is_empty());
    }

    #[test]
    fn lanes_are_balanced() {
        let toc: Vec<Entry> = (1..=100).map(|i| entry(i, "TABLE", &[])).collect();
        let ids: HashSet<u32> = (1..=100).collect();
        let lanes = lanes(&toc, &ids, 3);
        let sizes: Vec<usize> = lanes.iter().map(HashSet::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 100);
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
    }
}
