//! `compare schema`: the catalogs of both databases as (object, description) pairs, diffed.

use crate::pg::{compare_sql as q, sql, DbResultExt};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use tokio_postgres::Client;

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub object: String,
    /// "missing on target", "only on target", or "differs".
    pub kind: &'static str,
    pub source: Option<String>,
    pub target: Option<String>,
}

impl Difference {
    /// One line: the object, what is wrong, and where the descriptions part.
    pub fn line(&self) -> String {
        match (&self.source, &self.target) {
            (Some(_), None) => format!("{}: missing on the target", self.object),
            (None, Some(_)) => format!("{}: only on the target", self.object),
            (Some(s), Some(t)) => {
                let (a, b) = first_difference(s, t);
                format!("{}: differs: source {a:?}, target {b:?}", self.object)
            }
            (None, None) => self.object.clone(),
        }
    }
}

/// The parts of two texts around where they first differ, short enough for one line.
fn first_difference(a: &str, b: &str) -> (String, String) {
    let a_chars: Vec<char> = a.chars().collect();
    let b_chars: Vec<char> = b.chars().collect();
    let common = a_chars
        .iter()
        .zip(&b_chars)
        .take_while(|(x, y)| x == y)
        .count();
    let start = common.saturating_sub(30);
    let window = |v: &[char]| -> String {
        let end = (common + 60).min(v.len());
        let mut s: String = v[start.min(v.len())..end].iter().collect();
        s = s.replace('\n', " ");
        if start > 0 {
            s.insert_str(0, "...");
        }
        if end < v.len() {
            s.push_str("...");
        }
        s
    };
    (window(&a_chars), window(&b_chars))
}

/// A catalog as compare reads it: (object, description) pairs, the views' queries apart, and
/// the server's version.
struct Described {
    objects: BTreeMap<String, String>,
    views: BTreeMap<String, String>,
    version: i32,
}

async fn describe(client: &Client, owners: bool, acl: bool) -> Result<Described> {
    let version: i32 = client
        .query_one(sql::SERVER_VERSION, &[])
        .await
        .db()?
        .get(0);
    let queries = [
        ("schemas", q::schemas()),
        ("relations", q::relations()),
        ("columns", q::columns(version)),
        ("indexes", q::indexes()),
        ("constraints", q::constraints()),
        ("functions", q::functions()),
        ("triggers", q::triggers()),
        ("policies", q::policies()),
        ("rules", q::rules()),
        ("types", q::types()),
        ("extensions", q::EXTENSIONS.to_string()),
        ("comments", q::COMMENTS.to_string()),
        ("database settings", q::DATABASE_SETTINGS.to_string()),
    ];
    let mut out = BTreeMap::new();
    for (what, query) in queries {
        let rows = client
            .query(query.as_str(), &[&owners, &acl])
            .await
            .db()
            .with_context(|| format!("read {what}"))?;
        for r in rows {
            let object: String = r.get(0);
            let description: Option<String> = r.get(1);
            out.insert(object, description.unwrap_or_default());
        }
    }
    // Sequence state: read from each sequence itself. Those an extension registered as
    // configuration are left out: whether the clone carried them depends on
    // --skip-extensions and --filters, which compare is not told.
    let seqs: Vec<(String, String)> = client
        .query(&sql::sequences(), &[])
        .await
        .db()
        .context("list sequences")?
        .into_iter()
        .filter(|r| r.get::<_, Option<String>>(3).is_none())
        .map(|r| (r.get(1), r.get(2)))
        .collect();
    for chunk in seqs.chunks(1000) {
        for r in client
            .query(&sql::sequence_values(chunk), &[])
            .await
            .db()
            .context("read sequence values")?
        {
            let (schema, name) = &chunk[r.get::<_, i32>(0) as usize];
            out.insert(
                format!(
                    "sequence value {}.{}",
                    crate::catalog::display_ident(schema),
                    crate::catalog::display_ident(name)
                ),
                format!(
                    "last_value={} is_called={}",
                    r.get::<_, i64>(1),
                    r.get::<_, bool>(2)
                ),
            );
        }
    }
    let views = client
        .query(q::view_definitions().as_str(), &[&owners, &acl])
        .await
        .db()
        .context("read view definitions")?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(Described {
        objects: out,
        views,
        version,
    })
}

/// How `target` prints the query of a view: the source's query made into a temporary view
/// there, in a transaction that is rolled back. None when the target does not take it.
async fn as_printed_by(target: &Client, query: &str) -> Option<String> {
    let printed = async {
        target.batch_execute("begin").await?;
        target.batch_execute(&q::temp_view(query)).await?;
        target
            .query_one(q::TEMP_VIEW_DEFINITION, &[])
            .await
            .map(|r| r.get::<_, String>(0))
    }
    .await
    .ok();
    let _ = target.batch_execute("rollback").await;
    printed
}

/// Compares the two catalogs; returns the differences and how many objects were compared.
pub async fn compare(
    source: &Client,
    target: &Client,
    owners: bool,
    acl: bool,
    selection: &crate::filters::Selection,
) -> Result<(Vec<Difference>, usize)> {
    let (sd, td) = tokio::try_join!(
        async {
            describe(source, owners, acl)
                .await
                .context("read the source catalog")
        },
        async {
            describe(target, owners, acl)
                .await
                .context("read the target catalog")
        }
    )?;
    let (s, t) = normalize(sd.objects, td.objects, sd.version, td.version, selection);
    let mut diffs = differences(&s, &t);
    // Views' queries: between two major versions the same query may be printed another way,
    // so the source's is compared as the target prints it.
    let versions_differ = sd.version / 10000 != td.version / 10000;
    for (object, query) in &sd.views {
        if selection.excludes_compare_key(object) {
            continue;
        }
        let Some(target_query) = td.views.get(object) else {
            continue;
        };
        if query == target_query {
            continue;
        }
        if versions_differ && as_printed_by(target, query).await.as_ref() == Some(target_query) {
            continue;
        }
        diffs.push(Difference {
            object: object.clone(),
            kind: "differs",
            source: Some(query.clone()),
            target: Some(target_query.clone()),
        });
    }
    diffs.sort_by(|a, b| a.object.cmp(&b.object));
    let compared = s.len().max(t.len());
    Ok((diffs, compared))
}

/// Both sides' descriptions with what only reflects the versions normalized, and what the
/// filters leave out taken out.
fn normalize(
    s: BTreeMap<String, String>,
    mut t: BTreeMap<String, String>,
    source_version: i32,
    target_version: i32,
    selection: &crate::filters::Selection,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    // PostgreSQL 18 records NOT NULL as constraints of their own; from an older source they
    // are the columns' nullability, which is compared with the columns.
    if source_version < 180000 && target_version >= 180000 {
        t.retain(|k, v| !(k.starts_with("constraint ") && v.starts_with("NOT NULL ")));
    }
    // CREATE EXTENSION without a version (as pg_dump writes it) installs the target's own
    // default version, which a newer major may have moved on.
    let mut s = s;
    if source_version / 10000 != target_version / 10000 {
        for m in [&mut s, &mut t] {
            for (k, v) in m.iter_mut() {
                if k.starts_with("extension ") {
                    if let Some(pos) = v.find(" schema ") {
                        *v = v[pos + 1..].to_string();
                    }
                }
            }
        }
    }
    // What the filters leave out is not expected on the target; a materialized view whose
    // data is left out is not populated there.
    let select = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.into_iter()
            .filter(|(k, _)| !selection.excludes_compare_key(k))
            .map(|(k, v)| {
                if selection.unpopulated_by_design(&k) {
                    let v = v
                        .replace(" populated=true", "")
                        .replace(" populated=false", "");
                    (k, v)
                } else {
                    (k, v)
                }
            })
            .collect()
    };
    (select(s), select(t))
}

/// Each object missing on the target, differing, or only on the target.
fn differences(s: &BTreeMap<String, String>, t: &BTreeMap<String, String>) -> Vec<Difference> {
    let mut diffs = Vec::new();
    for (object, sd) in s {
        match t.get(object) {
            None => diffs.push(Difference {
                object: object.clone(),
                kind: "missing on target",
                source: Some(sd.clone()),
                target: None,
            }),
            Some(td) if td != sd => diffs.push(Difference {
                object: object.clone(),
                kind: "differs",
                source: Some(sd.clone()),
                target: Some(td.clone()),
            }),
            Some(_) => {}
        }
    }
    for (object, td) in t {
        if !s.contains_key(object) {
            diffs.push(Difference {
                object: object.clone(),
                kind: "only on target",
                source: None,
                target: Some(td.clone()),
            });
        }
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_where_texts_part() {
        let (a, b) = first_difference(
            "CREATE INDEX i ON t USING btree (a)",
            "CREATE INDEX i ON t USING hash (a)",
        );
        assert!(a.contains("btree") && b.contains("hash"), "{a} / {b}");
        let long = "x".repeat(200);
        let (a, _) = first_difference(&format!("{long}A{long}"), &format!("{long}B{long}"));
        assert!(a.starts_with("...") && a.ends_with("...") && a.contains('A'));
        assert!(a.len() < 100);
    }
}
