//! `--filters FILE`: pgcopydb's INI format of what to copy, and the selection it makes of the
//! source catalog, computed once and used everywhere (pg_dump, the restore lists, the COPY
//! queue, indexes, sequences, list, compare).
//!
//! - `parse`: the file, read into `Filters`;
//! - `source`: what the selection is decided from, read from the source (`SourceObjects`),
//!   with what each `~/regex/` entry matches (PostgreSQL's regular expressions, on the server);
//! - `select`: the rules, from `Filters` and `SourceObjects` to the `Selection`, without I/O;
//! - `selection`: the `Selection`, as the rest of the crate asks it.
//!
//! The entry points below read, then decide.

mod parse;
mod select;
mod selection;
mod source;

pub use parse::parse_name_parts;
pub use selection::Selection;

use anyhow::Result;
use source::SourceObjects;
use std::collections::BTreeSet;
use std::path::Path;
use tokio_postgres::Client;

/// A name as written in the file: exact (after SQL's quoting rules), or a regular expression
/// (`~/.../`, PostgreSQL's syntax) matched against the unquoted name (`schema.table` for
/// tables and indexes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(Vec<String>),
    Regex(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub pattern: Pattern,
    /// As written in the file.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    IncludeOnlySchema,
    ExcludeSchema,
    IncludeOnlyTable,
    ExcludeTable,
    ExcludeIndex,
    ExcludeTableData,
    IncludeOnlyExtension,
    ExcludeExtension,
}

impl Section {
    fn parse(name: &str) -> Option<Section> {
        Some(match name {
            "include-only-schema" => Section::IncludeOnlySchema,
            "exclude-schema" => Section::ExcludeSchema,
            "include-only-table" => Section::IncludeOnlyTable,
            "exclude-table" => Section::ExcludeTable,
            "exclude-index" => Section::ExcludeIndex,
            "exclude-table-data" => Section::ExcludeTableData,
            "include-only-extension" => Section::IncludeOnlyExtension,
            "exclude-extension" => Section::ExcludeExtension,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Section::IncludeOnlySchema => "include-only-schema",
            Section::ExcludeSchema => "exclude-schema",
            Section::IncludeOnlyTable => "include-only-table",
            Section::ExcludeTable => "exclude-table",
            Section::ExcludeIndex => "exclude-index",
            Section::ExcludeTableData => "exclude-table-data",
            Section::IncludeOnlyExtension => "include-only-extension",
            Section::ExcludeExtension => "exclude-extension",
        }
    }

    /// Entries are schema-qualified names (tables, indexes) rather than single names.
    fn qualified(&self) -> bool {
        matches!(
            self,
            Section::IncludeOnlyTable
                | Section::ExcludeTable
                | Section::ExcludeIndex
                | Section::ExcludeTableData
        )
    }
}

/// A parsed filters file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub sections: std::collections::BTreeMap<Section, Vec<Entry>>,
    /// The file's text, to tell a resumed run's filters from another's.
    pub text: String,
    /// Where it was read from, for messages.
    pub path: std::path::PathBuf,
}

fn bad(path: &Path, line: usize, msg: impl std::fmt::Display) -> anyhow::Error {
    crate::error::usage(format!("{} line {line}: {msg}", path.display()))
}
impl Filters {
    fn entries(&self, s: Section) -> &[Entry] {
        self.sections.get(&s).map(Vec::as_slice).unwrap_or(&[])
    }

    fn has(&self, s: Section) -> bool {
        self.sections.contains_key(&s)
    }

    /// Checks, against the source, that every entry names something (see
    /// `select::check_entries`): run before anything is written. Returns the warnings.
    pub async fn validate(&self, client: &Client) -> Result<Vec<String>> {
        let src = SourceObjects::read_names(client, self).await?;
        select::check_entries(self, &src)
    }
}

impl Selection {
    /// Computes the selection from the source catalog. `skip_extensions` leaves all
    /// extensions out (and the user rows of their configuration tables).
    pub async fn compute(
        client: &Client,
        filters: Option<&Filters>,
        skip_extensions: bool,
    ) -> Result<Selection> {
        let Some(f) = filters else {
            return Ok(Selection {
                active: skip_extensions,
                excluded_extensions: excluded_extensions(client, None, skip_extensions).await?,
                ..Default::default()
            });
        };
        let src = SourceObjects::read(client, f).await?;
        select::select(f, &src, skip_extensions)
    }
}

/// The extensions `--filters` (or `--skip-extensions`) leaves out, without computing the rest
/// of the selection (for the pre-flight checks).
pub async fn excluded_extensions(
    client: &Client,
    filters: Option<&Filters>,
    skip_extensions: bool,
) -> Result<BTreeSet<String>> {
    if filters.is_none() && !skip_extensions {
        return Ok(BTreeSet::new());
    }
    let src = SourceObjects::read_extensions(client, filters, skip_extensions).await?;
    match filters {
        Some(f) => select::extensions_left_out(f, &src, skip_extensions),
        None => Ok(src.extensions.into_iter().collect()),
    }
}
