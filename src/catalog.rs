//! The source catalog as plain Rust types, read in a few set-based queries inside the clone's
//! snapshot.

use crate::pg::sql;
use crate::pg::DbResultExt;
use anyhow::{Context, Result};
use std::collections::HashMap;
use tokio_postgres::Client;

#[derive(Clone, Debug)]
pub struct Table {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// Heap plus TOAST, in bytes.
    pub bytes: i64,
    /// The planner's estimate, for progress only.
    pub estimated_rows: i64,
    pub unlogged: bool,
    /// Copyable columns in order (generated columns left out).
    pub columns: Vec<String>,
    /// Set for an extension's configuration table. Such a table already holds the
    /// extension's own rows on the target, so it is neither truncated nor frozen: the rows its
    /// filter selects are deleted before they are copied.
    pub extension_config: Option<ExtensionConfig>,
    /// A single not-null integer column of a primary key or unique index, to split by.
    pub split_key: Option<String>,
    /// Heap pages (main fork), to split by when there is no key.
    pub pages: i64,
    /// Every column is of a type whose binary COPY form carries the value itself, the same on
    /// any server (`sql::BINARY_SAFE_TYPES`, and arrays, ranges and domains of those): no OID
    /// (reg* types, arrays of user types), nothing a server prints its own way.
    pub binary_ok: bool,
    /// A partitioned table whose rows must be routed by the target: one of its levels is
    /// hash-partitioned on a type whose hash depends on OIDs (an enum: its values' OIDs
    /// differ on the target). These are its selected leaves, read together and loaded
    /// through the partitioned table; empty for every other table.
    pub leaves: Vec<(String, String)>,
    /// For a leaf of such a tree: the partitioned table its rows are loaded through.
    pub load_root: Option<u32>,
    /// A materialized view reads this table (directly, or through views and parents): it is
    /// never split, so that its rows keep the source's order and the view's refresh on the
    /// target sees them as the source's did (a float sum depends on the order).
    pub read_by_matview: bool,
}

/// What an extension registered with `pg_extension_config_dump` for one of its tables.
#[derive(Debug, Clone)]
pub struct ExtensionConfig {
    pub extension: String,
    /// pg_dump's filter of the rows to carry (`WHERE ...`, possibly empty).
    pub filter: String,
}

impl Table {
    pub fn qualified(&self) -> String {
        sql::qualified(&self.schema, &self.name)
    }

    /// Whether a whole-table load can be `TRUNCATE` + `COPY ... FREEZE`: not for an extension's
    /// configuration table (the extension's own rows stay) nor for a partitioned table loaded
    /// through its root (COPY FREEZE refuses partitioned tables).
    pub fn frozen_on_load(&self) -> bool {
        self.extension_config.is_none() && self.leaves.is_empty()
    }

    /// Whether the table may be copied in parts.
    pub fn splittable(&self) -> bool {
        self.frozen_on_load() && !self.read_by_matview
    }

    /// A readable name for messages: schema.table, quoted only where needed.
    pub fn display(&self) -> String {
        format!(
            "{}.{}",
            display_ident(&self.schema),
            display_ident(&self.name)
        )
    }
}

/// Quotes a name for display only where a reader would otherwise misread it.
pub fn display_ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_string()
    } else {
        sql::ident(name)
    }
}

/// How an index comes to exist on the target: by its own archive entry (`CREATE INDEX`), or
/// by its constraint's (`ADD CONSTRAINT ... PRIMARY KEY | UNIQUE | EXCLUDE`, which builds the
/// index). Either way the statements are pg_dump's, with whatever it put beside them (CLUSTER
/// ON, REPLICA IDENTITY, statistics targets, DEPENDS ON EXTENSION).
#[derive(Clone, Debug)]
pub enum IndexKind {
    Plain,
    Constraint {
        oid: u32,
        name: String,
        /// 'p' primary key, 'u' unique, 'x' exclusion.
        contype: char,
    },
}

#[derive(Clone, Debug)]
pub struct Index {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub table_oid: u32,
    pub kind: IndexKind,
    /// Its size on disk at the source.
    pub bytes: u64,
}

impl Index {
    pub fn display(&self) -> String {
        format!(
            "{}.{}",
            display_ident(&self.schema),
            display_ident(&self.name)
        )
    }

    /// The catalog object that pg_dump's archive lists for this index: the constraint when
    /// there is one, else the index.
    pub fn archive_oid(&self) -> (u32, u32) {
        match &self.kind {
            IndexKind::Plain => (PG_CLASS, self.oid),
            IndexKind::Constraint { oid, .. } => (PG_CONSTRAINT, *oid),
        }
    }
}

pub const PG_CLASS: u32 = 1259;
pub const PG_CONSTRAINT: u32 = 2606;

#[derive(Clone, Debug)]
pub struct Sequence {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// The extension that registered it as configuration (its position is copied like a
    /// user sequence's).
    pub extension: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub server_version: i32,
    pub tables: Vec<Table>,
    pub indexes: Vec<Index>,
    pub sequences: Vec<Sequence>,
    pub large_objects: Vec<u32>,
    pub database_settings: Vec<String>,
    /// Settings of roles in this database: (role, settings).
    pub role_settings: Vec<(String, Vec<String>)>,
    pub database_comment: Option<String>,
    pub lc_monetary: String,
    /// Foreign keys by constraint oid.
    pub foreign_keys: std::collections::HashMap<u32, ForeignKey>,
    /// Partitioned tables whose leaves are loaded through them (see `Table::leaves`), with
    /// their own description.
    pub load_roots: std::collections::HashMap<u32, Table>,
}

/// What validating a foreign key involves.
#[derive(Clone, Copy, Debug)]
pub struct ForeignKey {
    /// The bytes its validation reads (None: unknown, as for partitioned tables).
    pub bytes: Option<i64>,
    pub table: u32,
    pub referenced: u32,
}

fn oid(v: i64) -> u32 {
    v as u32
}

impl Catalog {
    /// Keeps what the selection copies: the tables whose rows are copied (extension
    /// configuration tables too, unless their extension is skipped or filtered out), the
    /// indexes neoncopy builds on them (those of tables without copied rows are left to
    /// pg_restore), the sequences kept.
    pub fn apply(&mut self, sel: &crate::filters::Selection, skip_extensions: bool) {
        let left_out = |ext: Option<&String>| {
            ext.is_some_and(|e| skip_extensions || sel.excluded_extensions.contains(e))
        };
        self.tables.retain(|t| {
            sel.copies_rows_of(t.oid)
                && !left_out(t.extension_config.as_ref().map(|c| &c.extension))
        });
        let kept: std::collections::HashSet<u32> = self.tables.iter().map(|t| t.oid).collect();
        self.indexes
            .retain(|i| kept.contains(&i.table_oid) && !sel.excluded_indexes.contains_key(&i.oid));
        self.sequences
            .retain(|s| sel.table_selected(s.oid) && !left_out(s.extension.as_ref()));
    }

    /// Replaces the selected leaves of partitioned tables that must be loaded through their
    /// root by one table each: the root, reading its leaves. Their indexes are left to
    /// post-data (pg_restore builds them after the data).
    pub fn load_through_roots(&mut self) {
        if self.load_roots.is_empty() {
            return;
        }
        let mut grouped: std::collections::BTreeMap<u32, Table> = Default::default();
        let mut rest = Vec::with_capacity(self.tables.len());
        for t in std::mem::take(&mut self.tables) {
            let Some(root) = t.load_root.and_then(|r| self.load_roots.get(&r)) else {
                rest.push(t);
                continue;
            };
            let g = grouped.entry(root.oid).or_insert_with(|| Table {
                bytes: 0,
                estimated_rows: 0,
                pages: 0,
                binary_ok: root.binary_ok,
                ..root.clone()
            });
            g.bytes += t.bytes;
            g.estimated_rows += t.estimated_rows;
            g.pages += t.pages;
            g.binary_ok &= t.binary_ok;
            g.leaves.push((t.schema, t.name));
        }
        rest.extend(grouped.into_values());
        rest.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| a.display().cmp(&b.display()))
        });
        let kept: std::collections::HashSet<u32> = rest.iter().map(|t| t.oid).collect();
        self.indexes.retain(|i| kept.contains(&i.table_oid));
        self.tables = rest;
    }

    /// Reads everything the clone needs. `client` must already be inside the snapshot (or not,
    /// when the clone is not consistent).
    pub async fn read(client: &Client, with_large_objects: bool) -> Result<Catalog> {
        let server_version: i32 = client
            .query_one(sql::SERVER_VERSION, &[])
            .await
            .db()
            .context("read source server version")?
            .get(0);
        let lc_monetary: String = client
            .query_one(sql::LC_MONETARY, &[])
            .await
            .db()
            .context("read source lc_monetary")?
            .get(0);
        let tables = read_tables(client, server_version).await?;
        let indexes = read_indexes(client, &tables).await?;
        let sequences = read_sequences(client).await?;
        let large_objects = if with_large_objects {
            read_large_objects(client).await?
        } else {
            Vec::new()
        };
        let foreign_keys = read_foreign_keys(client).await?;
        let load_roots = read_load_roots(client, server_version, &tables).await?;
        let row = client
            .query_one(sql::DATABASE_SETTINGS, &[])
            .await
            .db()
            .context("read source database settings")?;
        let role_settings = read_role_settings(client).await?;
        Ok(Catalog {
            server_version,
            role_settings,
            tables,
            indexes,
            sequences,
            large_objects,
            database_settings: row.get(0),
            database_comment: row.get(1),
            lc_monetary,
            foreign_keys,
            load_roots,
        })
    }
}

async fn read_tables(client: &Client, server_version: i32) -> Result<Vec<Table>> {
    Ok(client
        .query(&sql::tables(server_version), &[])
        .await
        .db()
        .context("list source tables")?
        .into_iter()
        .map(|r| Table {
            oid: oid(r.get(0)),
            schema: r.get(1),
            name: r.get(2),
            bytes: r.get(3),
            estimated_rows: r.get(4),
            unlogged: r.get(5),
            extension_config: r
                .get::<_, Option<String>>(7)
                .map(|extension| ExtensionConfig {
                    extension,
                    filter: r.get::<_, Option<String>>(6).unwrap_or_default(),
                }),
            columns: r.get(8),
            split_key: r.get(9),
            pages: r.get(10),
            binary_ok: r.get(11),
            leaves: Vec::new(),
            load_root: r.get::<_, Option<i64>>(12).map(oid),
            read_by_matview: r.get(13),
        })
        .collect())
}

/// The indexes of `tables`, but for extension configuration tables: those keep the indexes
/// the extension made.
async fn read_indexes(client: &Client, tables: &[Table]) -> Result<Vec<Index>> {
    let table_oids: Vec<i64> = tables
        .iter()
        .filter(|t| t.extension_config.is_none())
        .map(|t| t.oid as i64)
        .collect();
    Ok(client
        .query(sql::INDEXES, &[&table_oids])
        .await
        .db()
        .context("list source indexes")?
        .into_iter()
        .map(|r| {
            let con_oid: Option<i64> = r.get(4);
            let con_name: Option<String> = r.get(5);
            let con_type: Option<String> = r.get(6);
            let kind = match (con_oid, con_name, con_type) {
                (Some(o), Some(name), Some(t)) => IndexKind::Constraint {
                    oid: oid(o),
                    name,
                    contype: t.chars().next().unwrap_or('u'),
                },
                _ => IndexKind::Plain,
            };
            Index {
                oid: oid(r.get(0)),
                schema: r.get(1),
                name: r.get(2),
                table_oid: oid(r.get(3)),
                kind,
                bytes: r.get::<_, i64>(7).max(0) as u64,
            }
        })
        .collect())
}

async fn read_sequences(client: &Client) -> Result<Vec<Sequence>> {
    Ok(client
        .query(&sql::sequences(), &[])
        .await
        .db()
        .context("list source sequences")?
        .into_iter()
        .map(|r| Sequence {
            oid: oid(r.get(0)),
            schema: r.get(1),
            name: r.get(2),
            extension: r.get(3),
        })
        .collect())
}

async fn read_large_objects(client: &Client) -> Result<Vec<u32>> {
    Ok(client
        .query(sql::LARGE_OBJECTS, &[])
        .await
        .db()
        .context("list source large objects")?
        .into_iter()
        .map(|r| oid(r.get(0)))
        .collect())
}

async fn read_foreign_keys(client: &Client) -> Result<HashMap<u32, ForeignKey>> {
    Ok(client
        .query(sql::FOREIGN_KEY_SIZES, &[])
        .await
        .db()
        .context("list source foreign keys")?
        .into_iter()
        .map(|r| {
            let fk = ForeignKey {
                bytes: r.get(1),
                table: oid(r.get(2)),
                referenced: oid(r.get(3)),
            };
            (oid(r.get(0)), fk)
        })
        .collect())
}

/// The partitioned tables that the leaves among `tables` are loaded through, described as
/// tables of their own.
async fn read_load_roots(
    client: &Client,
    server_version: i32,
    tables: &[Table],
) -> Result<HashMap<u32, Table>> {
    let roots: Vec<i64> = tables
        .iter()
        .filter_map(|t| t.load_root.map(i64::from))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if roots.is_empty() {
        return Ok(Default::default());
    }
    Ok(client
        .query(&sql::load_roots(server_version), &[&roots])
        .await
        .db()
        .context("list partitioned tables loaded through their root")?
        .into_iter()
        .map(|r| {
            let t = Table {
                oid: oid(r.get(0)),
                schema: r.get(1),
                name: r.get(2),
                bytes: 0,
                estimated_rows: 0,
                unlogged: false,
                columns: r.get(3),
                extension_config: None,
                split_key: None,
                pages: 0,
                binary_ok: r.get(4),
                leaves: Vec::new(),
                load_root: None,
                read_by_matview: false,
            };
            (t.oid, t)
        })
        .collect())
}

async fn read_role_settings(client: &Client) -> Result<Vec<(String, Vec<String>)>> {
    Ok(client
        .query(sql::DATABASE_ROLE_SETTINGS, &[])
        .await
        .db()
        .context("read source role settings in the database")?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(display_ident("orders"), "orders");
        assert_eq!(display_ident("Orders"), "\"Orders\"");
        assert_eq!(display_ident("a b"), "\"a b\"");
        assert_eq!(display_ident("1x"), "\"1x\"");
    }
}
