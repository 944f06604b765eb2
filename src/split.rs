//! Splitting big tables into parts that can be copied at the same time.
//!
//! Parts are balanced by rows, not by key range: with a single-column integer key, the
//! boundaries are the key's quantiles (over a sample when the table is big); without one, the
//! table is cut into equal ranges of heap pages (a TID range scan reads only its pages). The
//! size compared with the threshold counts TOAST, so a table of big values is split too.

use crate::catalog::Table;
use crate::pg::{sql, DbResultExt};
use anyhow::{Context, Result};
use serde::Serialize;
use tokio_postgres::Client;

/// Rows sampled for the quantiles of a big table.
const SAMPLE_ROWS: f64 = 300_000.0;

#[derive(Clone, Debug, Serialize)]
pub struct Part {
    /// 1-based.
    pub part: u32,
    pub parts: u32,
    /// The condition selecting this part's rows (`None` for a whole table).
    pub condition: Option<String>,
    pub est_rows: i64,
    pub est_bytes: i64,
}

/// How many parts a table of `bytes` gets.
pub fn part_count(bytes: i64, threshold: u64, max_parts: u32) -> u32 {
    if threshold == 0 || bytes <= threshold as i64 {
        return 1;
    }
    let wanted = (bytes as u64).div_ceil(threshold);
    wanted.min(max_parts.max(1) as u64) as u32
}

fn whole(t: &Table) -> Vec<Part> {
    vec![Part {
        part: 1,
        parts: 1,
        condition: None,
        est_rows: t.estimated_rows,
        est_bytes: t.bytes,
    }]
}

/// Cuts `[lo, hi)` style boundaries into parts with conditions.
fn parts_from_boundaries(t: &Table, key: Option<&str>, bounds: &[i64]) -> Vec<Part> {
    let n = bounds.len() as u32 + 1;
    (0..n)
        .map(|i| {
            let lo = (i > 0).then(|| bounds[i as usize - 1]);
            let hi = (i + 1 < n).then(|| bounds[i as usize]);
            Part {
                part: i + 1,
                parts: n,
                condition: Some(sql::part_condition(key, lo, hi)),
                est_rows: t.estimated_rows / n as i64,
                est_bytes: t.bytes / n as i64,
            }
        })
        .collect()
}

/// Plans the parts of one table. `client` should see the clone's snapshot.
pub async fn plan_table(
    client: &Client,
    t: &Table,
    threshold: u64,
    max_parts: u32,
) -> Result<Vec<Part>> {
    let n = part_count(t.bytes, threshold, max_parts);
    if n < 2 || !t.splittable() {
        return Ok(whole(t));
    }
    let mut bounds: Vec<i64> = match &t.split_key {
        Some(key) => {
            let fractions: Vec<f64> = (1..n).map(|i| i as f64 / n as f64).collect();
            let sample = (t.estimated_rows as f64 > 2.0 * SAMPLE_ROWS)
                .then(|| (100.0 * SAMPLE_ROWS / t.estimated_rows as f64).clamp(0.0001, 100.0));
            let row = client
                .query_one(
                    &sql::key_quantiles(&t.schema, &t.name, key, sample),
                    &[&fractions],
                )
                .await
                .db()
                .with_context(|| format!("find split points of {}", t.display()))?;
            row.get::<_, Option<Vec<Option<i64>>>>(0)
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .collect()
        }
        None => (1..n as i64).map(|i| t.pages * i / n as i64).collect(),
    };
    bounds.sort_unstable();
    bounds.dedup();
    if t.split_key.is_none() {
        bounds.retain(|b| *b > 0);
    }
    if bounds.is_empty() {
        return Ok(whole(t));
    }
    Ok(parts_from_boundaries(t, t.split_key.as_deref(), &bounds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(part_count(100, 0, 8), 1);
        assert_eq!(part_count(100, 100, 8), 1);
        assert_eq!(part_count(101, 100, 8), 2);
        assert_eq!(part_count(1000, 100, 8), 8);
        assert_eq!(part_count(1000, 100, 0), 1);
    }

    #[test]
    fn conditions_cover_everything_once() {
        let t = Table {
            oid: 1,
            schema: "s".into(),
            name: "t".into(),
            bytes: 300,
            estimated_rows: 30,
            unlogged: false,
            columns: vec![],
            extension_config: None,
            split_key: Some("id".into()),
            pages: 3,
            binary_ok: true,
            leaves: Vec::new(),
            load_root: None,
            read_by_matview: false,
        };
        let p = parts_from_boundaries(&t, Some("id"), &[10, 20]);
        let c: Vec<_> = p.iter().map(|p| p.condition.clone().unwrap()).collect();
        assert_eq!(
            c,
            vec![
                r#""id" < 10"#,
                r#""id" >= 10 and "id" < 20"#,
                r#""id" >= 20"#
            ]
        );
        let p = parts_from_boundaries(&t, None, &[5]);
        assert_eq!(p[0].condition.as_deref(), Some("ctid < '(5,0)'::tid"));
        assert_eq!(p[1].condition.as_deref(), Some("ctid >= '(5,0)'::tid"));
        assert_eq!((p[1].part, p[1].parts), (2, 2));
    }
}
