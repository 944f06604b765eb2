//! The source catalog as plain Rust types, read in a few set-based queries inside the clone's
//! snapshot.

use crate::pg::sql;
use crate::pg::DbResultExt;
use anyhow::{Context, Result};
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
    /// Every column is of a built-in type, whose binary COPY format names no OID of this
    /// server (user types, and arrays of them, carry OIDs that differ on the target).
    pub binary_ok: bool,
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

/// How an index comes to exist on the target.
#[derive(Clone, Debug)]
pub enum IndexKind {
    Plain,
    /// `CREATE UNIQUE INDEX`, then `ADD CONSTRAINT ... {PRIMARY KEY|UNIQUE} USING INDEX`.
    Constraint {
        oid: u32,
        name: String,
        primary: bool,
        deferrable: bool,
        deferred: bool,
    },
    /// `ADD CONSTRAINT name EXCLUDE ...`, which builds its own index.
    Exclusion {
        oid: u32,
        name: String,
        definition: String,
    },
}

#[derive(Clone, Debug)]
pub struct Index {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub table_oid: u32,
    pub definition: String,
    pub kind: IndexKind,
    pub clustered: bool,
    pub replica_identity: bool,
    /// (index column number, statistics target) set with ALTER INDEX ... SET STATISTICS.
    pub column_statistics: Vec<(i32, i32)>,
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
            IndexKind::Constraint { oid, .. } | IndexKind::Exclusion { oid, .. } => {
                (PG_CONSTRAINT, *oid)
            }
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
    pub database_comment: Option<String>,
    pub lc_monetary: String,
    /// Foreign keys by constraint oid: the bytes their validation reads (None: unknown, as
    /// for partitioned tables).
    pub foreign_keys: std::collections::HashMap<u32, Option<i64>>,
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

        let tables: Vec<Table> = client
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
            })
            .collect();

        // Extension configuration tables keep the indexes the extension made.
        let table_oids: Vec<i64> = tables
            .iter()
            .filter(|t| t.extension_config.is_none())
            .map(|t| t.oid as i64)
            .collect();
        let indexes = client
            .query(sql::INDEXES, &[&table_oids])
            .await
            .db()
            .context("list source indexes")?
            .into_iter()
            .map(|r| {
                let con_oid: Option<i64> = r.get(5);
                let con_name: Option<String> = r.get(6);
                let con_type: Option<String> = r.get(7);
                let kind = match (con_oid, con_name, con_type.as_deref()) {
                    (Some(o), Some(name), Some("x")) => IndexKind::Exclusion {
                        oid: oid(o),
                        name,
                        definition: r.get::<_, Option<String>>(10).unwrap_or_default(),
                    },
                    (Some(o), Some(name), Some(t)) => IndexKind::Constraint {
                        oid: oid(o),
                        name,
                        primary: t == "p",
                        deferrable: r.get::<_, Option<bool>>(8).unwrap_or(false),
                        deferred: r.get::<_, Option<bool>>(9).unwrap_or(false),
                    },
                    _ => IndexKind::Plain,
                };
                let attnums: Vec<i32> = r.get(13);
                let targets: Vec<i32> = r.get(14);
                Index {
                    oid: oid(r.get(0)),
                    schema: r.get(1),
                    name: r.get(2),
                    table_oid: oid(r.get(3)),
                    definition: r.get(4),
                    kind,
                    clustered: r.get(11),
                    replica_identity: r.get(12),
                    column_statistics: attnums.into_iter().zip(targets).collect(),
                }
            })
            .collect();

        let sequences = client
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
            .collect();

        let large_objects = if with_large_objects {
            client
                .query(sql::LARGE_OBJECTS, &[])
                .await
                .db()
                .context("list source large objects")?
                .into_iter()
                .map(|r| oid(r.get(0)))
                .collect()
        } else {
            Vec::new()
        };

        let foreign_keys = client
            .query(sql::FOREIGN_KEY_SIZES, &[])
            .await
            .db()
            .context("list source foreign keys")?
            .into_iter()
            .map(|r| (oid(r.get(0)), r.get(1)))
            .collect();

        let row = client
            .query_one(sql::DATABASE_SETTINGS, &[])
            .await
            .db()
            .context("read source database settings")?;

        Ok(Catalog {
            server_version,
            tables,
            indexes,
            sequences,
            large_objects,
            database_settings: row.get(0),
            database_comment: row.get(1),
            lc_monetary,
            foreign_keys,
        })
    }
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
