//! What the selection is decided from, read from the source: its schemas, relations,
//! indexes, extensions and the links between them (partitions, owned sequences, what views
//! read, the constraints indexes stand for, foreign keys), the names quoted as the server
//! quotes them, and, for every `~/regex/` entry, the names it matches (PostgreSQL's regular
//! expressions, matched on the server).

use super::{bad, Entry, Filters, Pattern, Section};
use crate::pg::{sql, DbResultExt};
use anyhow::Result;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use tokio_postgres::Client;

/// A relation a table entry can name: a table, partitioned table, foreign table, view,
/// materialized view or sequence.
#[derive(Debug, Clone)]
pub(super) struct Relation {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// pg_class.relkind.
    pub kind: char,
    /// For a partition, its parent; for an owned sequence, the owning table.
    pub parent: Option<u32>,
}

impl Relation {
    /// Whether a table entry can name it.
    pub fn is_table(&self) -> bool {
        matches!(self.kind, 'r' | 'p' | 'f' | 'm' | 'v' | 'S')
    }

    /// `schema.name`, unquoted: what a pattern is matched against.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Index {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// The relation it indexes.
    pub table: u32,
}

impl Index {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A primary key, unique or exclusion constraint, and the index it stands on.
#[derive(Debug, Clone)]
pub(super) struct IndexConstraint {
    pub oid: u32,
    pub index: u32,
    /// `schema.table.constraint`, quoted as format('%I') quotes.
    pub quoted: String,
}

#[derive(Debug, Clone)]
pub(super) struct ForeignKey {
    pub oid: u32,
    pub name: String,
    pub table: u32,
    /// The table as regclass writes it (quoted, qualified unless on the search path).
    pub table_name: String,
    pub referenced: u32,
    pub referenced_name: String,
    /// The unique index of the referenced table it relies on.
    pub index: u32,
    pub index_name: String,
    /// `schema.table.constraint`, quoted as format('%I') quotes.
    pub quoted: Option<String>,
}

/// What the server answered for the `~/regex/` entries.
#[derive(Debug, Clone, Default)]
pub(super) struct RegexMatches {
    /// By the line of the entry: the names its expression matches.
    pub by_line: HashMap<usize, BTreeSet<String>>,
    /// The first expression the server refused as invalid: its line and the usage error's
    /// text. The entries after it were not matched.
    pub refused: Option<(usize, String)>,
}

/// The source as the selection sees it. `Default` is an empty source.
#[derive(Debug, Clone, Default)]
pub(super) struct SourceObjects {
    pub schemas: Vec<String>,
    pub relations: Vec<Relation>,
    pub indexes: Vec<Index>,
    pub extensions: Vec<String>,
    /// (a view, materialized view or other relation with rules, a relation its rules read).
    /// What reads a relation left out is left out too.
    pub rule_reads: Vec<(u32, u32)>,
    /// (an index of a partition, the partitioned index it belongs to).
    pub index_parents: Vec<(u32, u32)>,
    pub index_constraints: Vec<IndexConstraint>,
    /// In the order the server lists them.
    pub foreign_keys: Vec<ForeignKey>,
    /// Every name above (schemas, relations, indexes, extensions) as quote_ident writes it.
    pub quoted: HashMap<String, String>,
    pub matches: RegexMatches,
}

/// The order in which the entries' expressions are matched: the order the selection's rules
/// ask for them, so that the first expression the server refuses is the one reported.
const MATCH_ORDER: [Section; 8] = [
    Section::IncludeOnlySchema,
    Section::ExcludeSchema,
    Section::ExcludeTable,
    Section::IncludeOnlyTable,
    Section::ExcludeTableData,
    Section::ExcludeIndex,
    Section::IncludeOnlyExtension,
    Section::ExcludeExtension,
];

fn oid(v: i64) -> u32 {
    v as u32
}

impl SourceObjects {
    /// Everything the selection of `f` is decided from.
    pub async fn read(client: &Client, f: &Filters) -> Result<SourceObjects> {
        let mut src = SourceObjects::read_objects(client).await?;
        let pairs = |rows: Vec<tokio_postgres::Row>| -> Vec<(u32, u32)> {
            rows.into_iter()
                .map(|r| (oid(r.get(0)), oid(r.get(1))))
                .collect()
        };
        src.rule_reads = pairs(client.query(sql::RULE_READS, &[]).await.db()?);
        src.index_parents = pairs(client.query(sql::INDEX_PARENTS, &[]).await.db()?);
        src.index_constraints = read_index_constraints(client).await?;
        src.foreign_keys = read_foreign_keys(client).await?;
        src.quoted = src.read_quoted(client).await?;
        // Last: a refused expression ends the transaction the reads may be in.
        src.matches = src.match_patterns(client, f, &MATCH_ORDER).await?;
        Ok(src)
    }

    /// What checking that every entry of `f` names something needs: the names, and what the
    /// expressions match.
    pub async fn read_names(client: &Client, f: &Filters) -> Result<SourceObjects> {
        let mut src = SourceObjects::read_objects(client).await?;
        src.matches = src.match_patterns(client, f, &MATCH_ORDER).await?;
        Ok(src)
    }

    /// The extensions, and what the expressions of the extension sections match (none with
    /// `skip_extensions`: all are left out).
    pub async fn read_extensions(
        client: &Client,
        filters: Option<&Filters>,
        skip_extensions: bool,
    ) -> Result<SourceObjects> {
        let mut src = SourceObjects {
            extensions: extension_names(client).await?,
            ..Default::default()
        };
        if let (Some(f), false) = (filters, skip_extensions) {
            let sections = [Section::IncludeOnlyExtension, Section::ExcludeExtension];
            src.matches = src.match_patterns(client, f, &sections).await?;
        }
        Ok(src)
    }

    /// Schemas, relations, indexes and extensions.
    async fn read_objects(client: &Client) -> Result<SourceObjects> {
        let relations = client
            .query(&sql::selection_relations(), &[])
            .await
            .db()?
            .into_iter()
            .map(|r| Relation {
                oid: oid(r.get(0)),
                schema: r.get(1),
                name: r.get(2),
                kind: r.get::<_, String>(3).chars().next().unwrap_or('r'),
                parent: r.get::<_, Option<i64>>(4).map(oid),
            })
            .collect();
        let indexes = client
            .query(&sql::selection_indexes(), &[])
            .await
            .db()?
            .into_iter()
            .map(|r| Index {
                oid: oid(r.get(0)),
                schema: r.get(1),
                name: r.get(2),
                table: oid(r.get(3)),
            })
            .collect();
        Ok(SourceObjects {
            schemas: schema_names(client).await?,
            relations,
            indexes,
            extensions: extension_names(client).await?,
            ..Default::default()
        })
    }

    /// Every name, quoted by the server.
    async fn read_quoted(&self, client: &Client) -> Result<HashMap<String, String>> {
        let mut names: BTreeSet<&String> = self.schemas.iter().chain(&self.extensions).collect();
        for r in &self.relations {
            names.extend([&r.schema, &r.name]);
        }
        for i in &self.indexes {
            names.extend([&i.schema, &i.name]);
        }
        let names: Vec<String> = names.into_iter().cloned().collect();
        let quoted = quote_names(client, &names).await?;
        Ok(names.into_iter().zip(quoted).collect())
    }

    /// A name as quote_ident writes it (the name itself when it was not read).
    pub fn quote(&self, name: &str) -> String {
        self.quoted
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// Matches the `~/regex/` entries of `sections` against the names of their section, on
    /// the server, in that order, up to the first the server refuses as invalid.
    async fn match_patterns(
        &self,
        client: &Client,
        f: &Filters,
        sections: &[Section],
    ) -> Result<RegexMatches> {
        let tables: Vec<String> = self
            .relations
            .iter()
            .filter(|r| r.is_table())
            .map(Relation::qualified)
            .collect();
        let indexes: Vec<String> = self.indexes.iter().map(Index::qualified).collect();
        let mut m = RegexMatches::default();
        for &section in sections {
            let names = match section {
                Section::IncludeOnlySchema | Section::ExcludeSchema => &self.schemas,
                Section::IncludeOnlyTable | Section::ExcludeTable | Section::ExcludeTableData => {
                    &tables
                }
                Section::ExcludeIndex => &indexes,
                Section::IncludeOnlyExtension | Section::ExcludeExtension => &self.extensions,
            };
            for e in f.entries(section) {
                let Pattern::Regex(re) = &e.pattern else {
                    continue;
                };
                match regex_matches(client, &f.path, e, re, names).await {
                    Ok(hits) => {
                        m.by_line.insert(e.line, hits.into_iter().collect());
                    }
                    Err(err) if crate::error::is(&err, crate::error::Class::Usage) => {
                        m.refused = Some((e.line, err.to_string()));
                        return Ok(m);
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(m)
    }

    /// The names the expression of entry `e` matches; its refusal by the server, as the usage
    /// error it is.
    pub fn matched(&self, e: &Entry) -> Result<Vec<&String>> {
        if let Some((line, text)) = &self.matches.refused {
            if *line == e.line {
                return Err(crate::error::usage(text.clone()));
            }
        }
        Ok(self
            .matches
            .by_line
            .get(&e.line)
            .map(|m| m.iter().collect())
            .unwrap_or_default())
    }
}

async fn read_index_constraints(client: &Client) -> Result<Vec<IndexConstraint>> {
    Ok(client
        .query(sql::INDEX_CONSTRAINTS, &[])
        .await
        .db()?
        .into_iter()
        .map(|r| IndexConstraint {
            oid: oid(r.get(0)),
            index: oid(r.get(1)),
            quoted: r.get(2),
        })
        .collect())
}

async fn read_foreign_keys(client: &Client) -> Result<Vec<ForeignKey>> {
    Ok(client
        .query(sql::FILTER_FOREIGN_KEYS, &[])
        .await
        .db()?
        .into_iter()
        .map(|r| ForeignKey {
            oid: oid(r.get(0)),
            name: r.get(1),
            table: oid(r.get(2)),
            table_name: r.get(3),
            referenced: oid(r.get(4)),
            referenced_name: r.get(5),
            index: oid(r.get(6)),
            index_name: r.get(7),
            quoted: r.get(8),
        })
        .collect())
}

/// The names a regular expression matches, on the server. An invalid expression is a usage
/// error naming the file and line; a lost connection is an error like any other.
async fn regex_matches(
    client: &Client,
    path: &Path,
    e: &Entry,
    re: &str,
    names: &[String],
) -> Result<Vec<String>> {
    match client.query(sql::REGEX_MATCHES, &[&names, &re]).await {
        Ok(rows) => Ok(rows.into_iter().map(|r| r.get::<_, String>(0)).collect()),
        Err(err) => {
            let code = err.code().cloned();
            Err(regex_error(path, e, code.as_ref(), crate::pg::db_err(err)))
        }
    }
}

/// A failed match: the expression's fault (a usage error) only when the server says it is
/// invalid; anything else (a lost connection) is an error like any other, naming the file.
fn regex_error(
    path: &Path,
    e: &Entry,
    code: Option<&tokio_postgres::error::SqlState>,
    err: anyhow::Error,
) -> anyhow::Error {
    if code == Some(&tokio_postgres::error::SqlState::INVALID_REGULAR_EXPRESSION) {
        bad(path, e.line, format!("{err:#}"))
    } else {
        err.context(format!(
            "match {} line {} against the source",
            path.display(),
            e.line
        ))
    }
}

/// Names quoted by the server, exactly as format('%I') and pg_describe_object quote them.
async fn quote_names(client: &Client, names: &[String]) -> Result<Vec<String>> {
    Ok(client
        .query(sql::QUOTE_IDENTS, &[&names])
        .await
        .db()?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

/// The source's schemas, as the filters match them.
async fn schema_names(client: &Client) -> Result<Vec<String>> {
    Ok(client
        .query(&sql::selection_schemas(), &[])
        .await
        .db()?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

async fn extension_names(client: &Client) -> Result<Vec<String>> {
    Ok(client
        .query(sql::SOURCE_EXTENSIONS, &[])
        .await
        .db()?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Filters> {
        Filters::parse(Path::new("f.ini"), text)
    }

    #[test]
    fn only_an_invalid_expression_is_a_usage_error() {
        use tokio_postgres::error::SqlState;
        let f = parse("[exclude-table]\n~/x/\n").unwrap();
        let e = &f.entries(Section::ExcludeTable)[0];
        let lost = || anyhow::anyhow!("connection reset");
        let invalid = regex_error(
            Path::new("f.ini"),
            e,
            Some(&SqlState::INVALID_REGULAR_EXPRESSION),
            lost(),
        );
        assert!(crate::error::is(&invalid, crate::error::Class::Usage));
        for code in [None, Some(&SqlState::ADMIN_SHUTDOWN)] {
            let other = regex_error(Path::new("f.ini"), e, code, lost());
            assert!(!crate::error::is(&other, crate::error::Class::Usage));
            let text = format!("{other:#}");
            assert!(
                text.contains("f.ini line 2") && text.contains("connection reset"),
                "{text}"
            );
        }
    }
}
