//! `--filters FILE`: pgcopydb's INI format of what to copy, and the selection it makes of the
//! source catalog, computed once and used everywhere (pg_dump, the restore lists, the COPY
//! queue, indexes, sequences, list, compare).

use crate::pg::{sql, DbResultExt};
use anyhow::Result;
use std::collections::{BTreeSet, HashMap, HashSet};
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

/// Splits `a.b` into names by SQL's rules: quoted parts are kept as written ("" for a quote),
/// unquoted ones are lowercased.
pub fn parse_name_parts(s: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.trim().chars().peekable();
    let mut quoted_part = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted_part = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            cur.push('"');
                        }
                        Some('"') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated quote in {s}")),
                    }
                }
            }
            '.' => {
                parts.push(std::mem::take(&mut cur));
                quoted_part = false;
            }
            c if quoted_part => return Err(format!("unexpected {c:?} after a quoted name in {s}")),
            c if c.is_whitespace() => {
                return Err(format!("unexpected space in {s} (quote the name)"))
            }
            c => cur.extend(c.to_lowercase()),
        }
    }
    parts.push(cur);
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("empty name in {s:?}"));
    }
    Ok(parts)
}

impl Filters {
    pub fn load(path: &Path) -> Result<Filters> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::error::usage(format!(
                "cannot read the filters file {}: {e}",
                path.display()
            ))
        })?;
        Filters::parse(path, &text)
    }

    /// The filters of an optional --filters FILE.
    pub fn load_optional(path: Option<&Path>) -> Result<Option<Filters>> {
        path.map(Filters::load).transpose()
    }

    pub fn parse(path: &Path, text: &str) -> Result<Filters> {
        let mut f = Filters {
            text: text.to_string(),
            path: path.to_path_buf(),
            ..Default::default()
        };
        let mut current: Option<Section> = None;
        let mut header_line: HashMap<Section, usize> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
                continue;
            }
            if let Some(rest) = l.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| bad(path, line, format!("malformed section header {l:?}")))?
                    .trim();
                let s = Section::parse(name).ok_or_else(|| {
                    bad(
                        path,
                        line,
                        format!(
                            "unknown section [{name}]: use include-only-schema, exclude-schema, \
                             include-only-table, exclude-table, exclude-index, exclude-table-data, \
                             include-only-extension or exclude-extension"
                        ),
                    )
                })?;
                header_line.entry(s).or_insert(line);
                f.sections.entry(s).or_default();
                current = Some(s);
                continue;
            }
            let Some(s) = current else {
                return Err(bad(path, line, format!("{l:?} is outside any [section]")));
            };
            let pattern = if let Some(re) = l.strip_prefix("~/") {
                let re = re.strip_suffix('/').ok_or_else(|| {
                    bad(path, line, format!("a pattern is written ~/regex/: {l:?}"))
                })?;
                if re.is_empty() {
                    return Err(bad(path, line, "empty pattern"));
                }
                Pattern::Regex(re.to_string())
            } else {
                let parts = parse_name_parts(l).map_err(|e| bad(path, line, e))?;
                match (s.qualified(), parts.len()) {
                    (true, 2) | (false, 1) => {}
                    (true, _) => {
                        return Err(bad(
                            path,
                            line,
                            format!("[{}] takes schema.name (quote odd names: \"My Schema\".\"My Table\"), not {l:?}", s.name()),
                        ))
                    }
                    (false, _) => {
                        return Err(bad(
                            path,
                            line,
                            format!("[{}] takes a single name, not {l:?}", s.name()),
                        ))
                    }
                }
                Pattern::Exact(parts)
            };
            f.sections.entry(s).or_default().push(Entry {
                line,
                pattern,
                text: l.to_string(),
            });
        }
        for (a, b) in [
            (Section::IncludeOnlySchema, Section::ExcludeSchema),
            (Section::IncludeOnlyTable, Section::ExcludeTable),
            (Section::IncludeOnlyExtension, Section::ExcludeExtension),
        ] {
            if let (Some(la), Some(lb)) = (header_line.get(&a), header_line.get(&b)) {
                return Err(bad(
                    path,
                    *la.max(lb),
                    format!(
                        "[{}] (line {la}) and [{}] (line {lb}) contradict each other: keep one",
                        a.name(),
                        b.name()
                    ),
                ));
            }
        }
        Ok(f)
    }

    fn entries(&self, s: Section) -> &[Entry] {
        self.sections.get(&s).map(Vec::as_slice).unwrap_or(&[])
    }

    fn has(&self, s: Section) -> bool {
        self.sections.contains_key(&s)
    }
}

/// An object of the source as the selection sees it.
#[derive(Debug, Clone)]
struct Rel {
    oid: u32,
    schema: String,
    name: String,
    kind: char,
    /// For a partition, its parent; for an owned sequence, the owning table.
    parent: Option<u32>,
}

/// What to copy, computed once from the source catalog.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub active: bool,
    /// Schemas pg_dump is told to dump (--schema); empty means all.
    pub include_schemas: Vec<String>,
    pub exclude_schemas: BTreeSet<String>,
    /// Relations left out (tables, views, matviews, sequences, foreign tables), by OID, with
    /// their (schema, name) for pg_dump's --exclude-table.
    pub excluded_relations: HashMap<u32, (String, String)>,
    /// Tables and matviews whose rows are not copied (nor refreshed).
    pub excluded_data: HashMap<u32, (String, String)>,
    pub excluded_indexes: HashMap<u32, (String, String)>,
    /// Foreign keys left out because they reference a relation or index left out.
    pub excluded_constraints: HashSet<u32>,
    pub excluded_extensions: BTreeSet<String>,
    /// Extensions kept, for pg_dump --extension when only some schemas are dumped.
    pub kept_extensions: BTreeSet<String>,
    pub warnings: Vec<String>,
    /// The names left out as compare and pg_describe_object write them (quote_ident):
    /// schemas, `schema.relation`, `schema.index`, extensions.
    quoted: QuotedNames,
}

#[derive(Debug, Clone, Default)]
struct QuotedNames {
    schemas: HashSet<String>,
    relations: HashSet<String>,
    indexes: HashSet<String>,
    extensions: HashSet<String>,
    data: HashSet<String>,
    /// `schema.table.constraint`
    constraints: HashSet<String>,
}

/// The leading `a.b.c` of a text, each part as written (quoted parts keep their quotes), up to
/// the first character that is not part of a name (a space, a parenthesis).
fn leading_qualified_name(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            part.push(chars.next().unwrap_or('"'));
            while let Some(c) = chars.next() {
                part.push(c);
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        part.push(chars.next().unwrap_or('"'));
                    } else {
                        break;
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' || c == ' ' || c == '(' {
                    break;
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            break;
        }
        parts.push(part);
        if chars.peek() == Some(&'.') {
            chars.next();
        } else {
            break;
        }
    }
    parts
}

fn quote_pattern(name: &str) -> String {
    // pg_dump patterns: double quotes make every character literal.
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Selection {
    /// pg_dump options that make the dump hold exactly the selection.
    pub fn pg_dump_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for s in &self.include_schemas {
            args.push(format!("--schema={}", quote_pattern(s)));
        }
        for s in &self.exclude_schemas {
            args.push(format!("--exclude-schema={}", quote_pattern(s)));
        }
        let mut rels: Vec<&(String, String)> = self.excluded_relations.values().collect();
        rels.sort();
        for (s, n) in rels {
            if !self.exclude_schemas.contains(s) {
                args.push(format!(
                    "--exclude-table={}.{}",
                    quote_pattern(s),
                    quote_pattern(n)
                ));
            }
        }
        let mut data: Vec<&(String, String)> = self.excluded_data.values().collect();
        data.sort();
        for (s, n) in data {
            args.push(format!(
                "--exclude-table-data={}.{}",
                quote_pattern(s),
                quote_pattern(n)
            ));
        }
        if !self.include_schemas.is_empty() {
            for e in &self.kept_extensions {
                args.push(format!("--extension={}", quote_pattern(e)));
            }
        }
        args
    }

    pub fn table_selected(&self, oid: u32) -> bool {
        !self.excluded_relations.contains_key(&oid)
    }

    pub fn copies_rows_of(&self, oid: u32) -> bool {
        self.table_selected(oid) && !self.excluded_data.contains_key(&oid)
    }

    /// The same, by name (for the target, whose OIDs differ).
    pub fn copies_rows_of_name(&self, schema: &str, name: &str) -> bool {
        let is = |(s, n): &(String, String)| s == schema && n == name;
        !self.excluded_relations.values().any(is) && !self.excluded_data.values().any(is)
    }

    /// Whether a compare key names a materialized view whose data is left out (its
    /// populated state differs by design).
    pub fn unpopulated_by_design(&self, key: &str) -> bool {
        key.strip_prefix("materialized view ")
            .is_some_and(|name| self.quoted.data.contains(name))
    }

    /// Whether an object named as compare names it (`kind schema.name...`) is left out.
    pub fn excludes_compare_key(&self, key: &str) -> bool {
        if !self.active {
            return false;
        }
        let q = &self.quoted;
        let Some((kind, rest)) = key.split_once(' ') else {
            return false;
        };
        let (kind, named) = if kind == "comment" {
            // pg_describe_object: "table s.t", "column c of table s.t", "constraint c on table
            // s.t", "function s.f()", "extension e"...
            let described = rest.strip_prefix("on ").unwrap_or(rest);
            if let Some(pos) = described
                .find(" of table ")
                .or_else(|| described.find(" on table "))
            {
                ("column", &described[pos + 10..])
            } else {
                let kinds = [
                    "materialized view ",
                    "foreign table ",
                    "table ",
                    "view ",
                    "sequence ",
                    "index ",
                    "function ",
                    "procedure ",
                    "aggregate ",
                    "type ",
                    "schema ",
                    "extension ",
                ];
                match kinds.iter().find(|k| described.starts_with(*k)) {
                    Some(k) => (k.trim_end(), &described[k.len()..]),
                    None => return false,
                }
            }
        } else {
            let named = rest
                .strip_prefix("view ")
                .or_else(|| rest.strip_prefix("table "))
                .or_else(|| rest.strip_prefix("value "))
                .unwrap_or(rest);
            (kind, named)
        };
        let parts = leading_qualified_name(named);
        let joined = |n: usize| (parts.len() >= n).then(|| parts[..n].join("."));
        match kind {
            "schema" => q.schemas.contains(named),
            "extension" => q.extensions.contains(named),
            _ if parts.first().is_some_and(|s| q.schemas.contains(s)) => true,
            "index" => joined(2).is_some_and(|n| q.indexes.contains(&n)),
            "constraint" => {
                joined(3).is_some_and(|n| q.constraints.contains(&n))
                    || joined(2).is_some_and(|n| q.relations.contains(&n))
            }
            "column" | "trigger" | "policy" | "rule" => {
                joined(2).is_some_and(|n| q.relations.contains(&n))
            }
            _ => joined(2).is_some_and(|n| q.relations.contains(&n)),
        }
    }

    /// Computes the selection from the source catalog. `skip_extensions` leaves all
    /// extensions out (and the user rows of their configuration tables).
    pub async fn compute(
        client: &Client,
        filters: Option<&Filters>,
        skip_extensions: bool,
    ) -> Result<Selection> {
        let mut sel = Selection::default();
        let Some(f) = filters else {
            sel.active = skip_extensions;
            sel.excluded_extensions = excluded_extensions(client, None, skip_extensions).await?;
            return Ok(sel);
        };
        sel.active = true;
        let rels: Vec<Rel> = client
            .query(&sql::selection_relations(), &[])
            .await
            .db()?
            .into_iter()
            .map(|r| Rel {
                oid: r.get::<_, i64>(0) as u32,
                schema: r.get(1),
                name: r.get(2),
                kind: r.get::<_, String>(3).chars().next().unwrap_or('r'),
                parent: r.get::<_, Option<i64>>(4).map(|o| o as u32),
            })
            .collect();
        let schemas = schema_names(client).await?;
        let extensions = extension_names(client).await?;

        // Schemas.
        let regex_hits = |entries, names| regex_hits(client, &f.path, entries, names);
        if f.has(Section::IncludeOnlySchema) {
            let e = f.entries(Section::IncludeOnlySchema);
            let hits = regex_hits(e, &schemas).await?;
            sel.include_schemas = pick(e, &schemas, &hits).into_iter().collect();
        }
        if f.has(Section::ExcludeSchema) {
            let e = f.entries(Section::ExcludeSchema);
            let hits = regex_hits(e, &schemas).await?;
            sel.exclude_schemas = pick(e, &schemas, &hits);
        }
        let schema_selected = |s: &str| {
            !sel.exclude_schemas.contains(s)
                && (sel.include_schemas.is_empty() || sel.include_schemas.iter().any(|i| i == s))
        };

        // Tables.
        let qualified = |r: &Rel| format!("{}.{}", r.schema, r.name);
        let matches_two = |e: &Entry, r: &Rel| match &e.pattern {
            Pattern::Exact(p) => p.len() == 2 && p[0] == r.schema && p[1] == r.name,
            Pattern::Regex(_) => false,
        };
        let tables: Vec<&Rel> = rels
            .iter()
            .filter(|r| matches!(r.kind, 'r' | 'p' | 'f' | 'm' | 'v' | 'S'))
            .collect();
        let table_names: Vec<String> = tables.iter().map(|r| qualified(r)).collect();
        let by_oid: HashMap<u32, &Rel> = rels.iter().map(|r| (r.oid, r)).collect();
        let pick_rels = |entries: &[Entry], hits: &HashSet<String>| -> HashSet<u32> {
            tables
                .iter()
                .filter(|r| {
                    hits.contains(&qualified(r)) || entries.iter().any(|e| matches_two(e, r))
                })
                .map(|r| r.oid)
                .collect()
        };
        let mut excluded: HashSet<u32> = HashSet::new();
        for r in &rels {
            if !schema_selected(&r.schema) {
                excluded.insert(r.oid);
            }
        }
        if f.has(Section::ExcludeTable) {
            let e = f.entries(Section::ExcludeTable);
            let hits = regex_hits(e, &table_names).await?;
            excluded.extend(pick_rels(e, &hits));
        }
        if f.has(Section::IncludeOnlyTable) {
            let e = f.entries(Section::IncludeOnlyTable);
            let hits = regex_hits(e, &table_names).await?;
            let mut keep = pick_rels(e, &hits);
            // A partition needs its parents; a partitioned table brings its partitions.
            loop {
                let before = keep.len();
                for r in &rels {
                    if let Some(p) = r.parent {
                        if matches!(r.kind, 'r' | 'p' | 'f')
                            && by_oid.get(&p).is_some_and(|pr| pr.kind == 'p')
                        {
                            if keep.contains(&r.oid) {
                                keep.insert(p);
                            }
                            if keep.contains(&p) {
                                keep.insert(r.oid);
                            }
                        }
                    }
                }
                if keep.len() == before {
                    break;
                }
            }
            for r in &rels {
                if matches!(r.kind, 'r' | 'p' | 'f') && !keep.contains(&r.oid) {
                    excluded.insert(r.oid);
                }
            }
        }
        // Partitions of excluded partitioned tables, sequences owned by excluded tables.
        loop {
            let before = excluded.len();
            for r in &rels {
                if let Some(p) = r.parent {
                    if excluded.contains(&p)
                        && (r.kind == 'S' || by_oid.get(&p).is_some_and(|pr| pr.kind == 'p'))
                    {
                        excluded.insert(r.oid);
                    }
                }
            }
            if excluded.len() == before {
                break;
            }
        }
        // Views and materialized views built on what is left out cannot be created.
        let excluded_list: Vec<i64> = excluded.iter().map(|o| *o as i64).collect();
        for row in client
            .query(sql::DEPENDENT_VIEWS, &[&excluded_list])
            .await
            .db()?
        {
            let oid = row.get::<_, i64>(0) as u32;
            if excluded.insert(oid) {
                if let Some(r) = by_oid.get(&oid) {
                    if schema_selected(&r.schema) {
                        sel.warnings.push(format!(
                            "view {} is left out: it reads a table that is left out",
                            qualified(r)
                        ));
                    }
                }
            }
        }
        for oid in &excluded {
            if let Some(r) = by_oid.get(oid) {
                sel.excluded_relations
                    .insert(*oid, (r.schema.clone(), r.name.clone()));
            }
        }

        // Table data.
        if f.has(Section::ExcludeTableData) {
            let e = f.entries(Section::ExcludeTableData);
            let hits = regex_hits(e, &table_names).await?;
            for oid in pick_rels(e, &hits) {
                if !excluded.contains(&oid) {
                    let r = by_oid[&oid];
                    sel.excluded_data
                        .insert(oid, (r.schema.clone(), r.name.clone()));
                }
            }
        }

        // Indexes.
        let indexes: Vec<(u32, String, String, u32)> = client
            .query(&sql::selection_indexes(), &[])
            .await
            .db()?
            .into_iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0) as u32,
                    r.get(1),
                    r.get(2),
                    r.get::<_, i64>(3) as u32,
                )
            })
            .collect();
        let index_names: Vec<String> = indexes
            .iter()
            .map(|(_, s, n, _)| format!("{s}.{n}"))
            .collect();
        let table_pairs: Vec<(String, String)> = tables
            .iter()
            .map(|r| (r.schema.clone(), r.name.clone()))
            .collect();
        let index_pairs: Vec<(String, String)> = indexes
            .iter()
            .map(|(_, s, n, _)| (s.clone(), n.clone()))
            .collect();
        let names = SourceNames {
            schemas: schemas.clone(),
            tables: table_pairs,
            indexes: index_pairs,
            extensions: extensions.clone(),
        };
        sel.warnings
            .extend(check_entries_match(client, f, &names).await?);
        let mut dropped_indexes: Vec<i64> = Vec::new();
        if f.has(Section::ExcludeIndex) {
            let e = f.entries(Section::ExcludeIndex);
            let hits = regex_hits(e, &index_names).await?;
            for (oid, s, n, table) in &indexes {
                let q = format!("{s}.{n}");
                let exact = e.iter().any(|en| matches!(&en.pattern, Pattern::Exact(p) if p.len() == 2 && &p[0] == s && &p[1] == n));
                if (hits.contains(&q) || exact) && !excluded.contains(table) {
                    sel.excluded_indexes.insert(*oid, (s.clone(), n.clone()));
                    dropped_indexes.push(*oid as i64);
                }
            }
            // A partitioned index takes its partitions' indexes along, as DROP INDEX would.
            let partitions: HashSet<u32> = client
                .query(sql::INDEX_PARTITIONS, &[&dropped_indexes])
                .await
                .db()?
                .into_iter()
                .map(|r| r.get::<_, i64>(0) as u32)
                .collect();
            for (oid, s, n, _) in indexes.iter().filter(|i| partitions.contains(&i.0)) {
                if sel
                    .excluded_indexes
                    .insert(*oid, (s.clone(), n.clone()))
                    .is_none()
                {
                    dropped_indexes.push(*oid as i64);
                }
            }
        }
        for (oid, s, n, table) in &indexes {
            if excluded.contains(table) {
                sel.excluded_indexes.insert(*oid, (s.clone(), n.clone()));
            }
        }
        // The constraints those indexes stand for go with them.
        for row in client
            .query(sql::CONSTRAINTS_OF_INDEXES, &[&dropped_indexes])
            .await
            .db()?
        {
            sel.excluded_constraints.insert(row.get::<_, i64>(0) as u32);
        }
        // Foreign keys to what is left out (a table, or the unique index they rely on).
        for row in client
            .query(
                sql::ORPHANED_FOREIGN_KEYS,
                &[&excluded_list_all(&excluded), &dropped_indexes],
            )
            .await
            .db()?
        {
            let oid = row.get::<_, i64>(0) as u32;
            sel.excluded_constraints.insert(oid);
            sel.warnings.push(format!(
                "foreign key {} on {} is left out: it references {}, which is left out",
                row.get::<_, String>(1),
                row.get::<_, String>(2),
                row.get::<_, String>(3)
            ));
        }

        // Extensions.
        sel.excluded_extensions =
            extensions_left_out(client, f, &extensions, skip_extensions).await?;
        sel.kept_extensions = extensions
            .iter()
            .filter(|e| !sel.excluded_extensions.contains(*e))
            .cloned()
            .collect();
        let left_out_schemas: Vec<String> = schemas
            .iter()
            .filter(|s| !schema_selected(s))
            .cloned()
            .collect();
        sel.quoted = QuotedNames {
            schemas: quote_names(client, &left_out_schemas)
                .await?
                .into_iter()
                .collect(),
            relations: quote_pairs(client, sel.excluded_relations.values()).await?,
            indexes: quote_pairs(client, sel.excluded_indexes.values()).await?,
            data: quote_pairs(client, sel.excluded_data.values()).await?,
            constraints: {
                let oids: Vec<i64> = sel.excluded_constraints.iter().map(|o| *o as i64).collect();
                client
                    .query(sql::QUOTED_CONSTRAINT_NAMES, &[&oids])
                    .await
                    .db()?
                    .into_iter()
                    .map(|r| r.get(0))
                    .collect()
            },
            extensions: quote_names(
                client,
                &sel.excluded_extensions.iter().cloned().collect::<Vec<_>>(),
            )
            .await?
            .into_iter()
            .collect(),
        };
        Ok(sel)
    }
}

/// Of `names`, those a single-name entry names exactly or a regular expression matches.
fn pick(entries: &[Entry], names: &[String], hits: &HashSet<String>) -> BTreeSet<String> {
    let named = |n: &str| {
        entries
            .iter()
            .any(|e| matches!(&e.pattern, Pattern::Exact(p) if p.len() == 1 && p[0] == n))
    };
    names
        .iter()
        .filter(|n| hits.contains(*n) || named(n))
        .cloned()
        .collect()
}

/// Of `names`, those the entries' regular expressions match (on the server, with PostgreSQL's
/// regular expressions); an invalid one is a usage error naming its line.
async fn regex_hits(
    client: &Client,
    path: &Path,
    entries: &[Entry],
    names: &[String],
) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for e in entries {
        if let Pattern::Regex(re) = &e.pattern {
            out.extend(regex_matches(client, path, e, re, names).await?);
        }
    }
    Ok(out)
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

/// The entries that name nothing among `names` (exact ones as `exact` says, patterns on the
/// server).
async fn matching_nothing<'a>(
    client: &Client,
    path: &Path,
    entries: &'a [Entry],
    names: &[String],
    exact: &dyn Fn(&[String]) -> bool,
) -> Result<Vec<&'a Entry>> {
    let mut out = Vec::new();
    for e in entries {
        let matched = match &e.pattern {
            Pattern::Exact(parts) => exact(parts),
            Pattern::Regex(re) => !regex_matches(client, path, e, re, names).await?.is_empty(),
        };
        if !matched {
            out.push(e);
        }
    }
    Ok(out)
}

/// Checks that every entry of the filters names something: an include-only entry that names
/// nothing is a typo, refused (a usage error naming the file, line and entry, before anything
/// is written); an exclude entry that names nothing is a warning.
async fn check_entries_match(client: &Client, f: &Filters, n: &SourceNames) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let (schemas, tables, indexes, extensions) = (&n.schemas, &n.tables, &n.indexes, &n.extensions);
    let qualified = |v: &[(String, String)]| -> Vec<String> {
        v.iter().map(|(s, n)| format!("{s}.{n}")).collect()
    };
    let (table_names, index_names) = (qualified(tables), qualified(indexes));
    let one = |names: &[String]| {
        let names = names.to_vec();
        move |p: &[String]| p.len() == 1 && names.contains(&p[0])
    };
    let two = |pairs: &[(String, String)]| {
        let pairs = pairs.to_vec();
        move |p: &[String]| p.len() == 2 && pairs.iter().any(|(s, n)| *s == p[0] && *n == p[1])
    };
    let in_schemas = one(schemas);
    let in_extensions = one(extensions);
    let in_tables = two(tables);
    let in_indexes = two(indexes);
    type Check<'a> = (
        Section,
        &'a [String],
        &'a dyn Fn(&[String]) -> bool,
        &'a str,
    );
    let sections: [Check<'_>; 8] = [
        (Section::IncludeOnlySchema, schemas, &in_schemas, "schema"),
        (Section::ExcludeSchema, schemas, &in_schemas, "schema"),
        (Section::IncludeOnlyTable, &table_names, &in_tables, "table"),
        (Section::ExcludeTable, &table_names, &in_tables, "table"),
        (Section::ExcludeTableData, &table_names, &in_tables, "table"),
        (Section::ExcludeIndex, &index_names, &in_indexes, "index"),
        (
            Section::IncludeOnlyExtension,
            extensions,
            &in_extensions,
            "extension",
        ),
        (
            Section::ExcludeExtension,
            extensions,
            &in_extensions,
            "extension",
        ),
    ];
    for (section, names, exact, kind) in sections {
        let unmatched = matching_nothing(client, &f.path, f.entries(section), names, exact).await?;
        for e in unmatched {
            let what = format!(
                "[{}] {} matches no {kind} of the source",
                section.name(),
                e.text
            );
            if matches!(
                section,
                Section::IncludeOnlySchema
                    | Section::IncludeOnlyTable
                    | Section::IncludeOnlyExtension
            ) {
                return Err(bad(
                    &f.path,
                    e.line,
                    format!(
                        "{what}: correct it (a name with capitals or spaces is written in double \
                         quotes, a table as schema.table) or remove it"
                    ),
                ));
            }
            warnings.push(format!(
                "{} line {}: {what}; it leaves nothing out",
                f.path.display(),
                e.line
            ));
        }
    }
    Ok(warnings)
}

/// The names filters are matched against.
struct SourceNames {
    schemas: Vec<String>,
    tables: Vec<(String, String)>,
    indexes: Vec<(String, String)>,
    extensions: Vec<String>,
}

impl Filters {
    /// Checks, against the source, that every entry names something (see
    /// `check_entries_match`): run before anything is written. Returns the warnings.
    pub async fn validate(&self, client: &Client) -> Result<Vec<String>> {
        let pairs = |rows: Vec<tokio_postgres::Row>, a: usize, b: usize| -> Vec<(String, String)> {
            rows.into_iter().map(|r| (r.get(a), r.get(b))).collect()
        };
        let tables = pairs(
            client.query(&sql::selection_relations(), &[]).await.db()?,
            1,
            2,
        );
        let indexes = pairs(
            client.query(&sql::selection_indexes(), &[]).await.db()?,
            1,
            2,
        );
        let schemas = schema_names(client).await?;
        let names = SourceNames {
            schemas,
            tables,
            indexes,
            extensions: extension_names(client).await?,
        };
        check_entries_match(client, self, &names).await
    }
}

/// The extensions left out: all with --skip-extensions, else as the extension sections say.
async fn extensions_left_out(
    client: &Client,
    f: &Filters,
    extensions: &[String],
    skip_extensions: bool,
) -> Result<BTreeSet<String>> {
    Ok(if skip_extensions {
        extensions.iter().cloned().collect()
    } else if f.has(Section::IncludeOnlyExtension) {
        let e = f.entries(Section::IncludeOnlyExtension);
        let keep = pick(
            e,
            extensions,
            &regex_hits(client, &f.path, e, extensions).await?,
        );
        extensions
            .iter()
            .filter(|x| !keep.contains(*x))
            .cloned()
            .collect()
    } else if f.has(Section::ExcludeExtension) {
        let e = f.entries(Section::ExcludeExtension);
        pick(
            e,
            extensions,
            &regex_hits(client, &f.path, e, extensions).await?,
        )
    } else {
        BTreeSet::new()
    })
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
    let extensions = extension_names(client).await?;
    match filters {
        Some(f) => extensions_left_out(client, f, &extensions, skip_extensions).await,
        None => Ok(extensions.into_iter().collect()),
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

async fn quote_pairs<'a>(
    client: &Client,
    pairs: impl Iterator<Item = &'a (String, String)>,
) -> Result<HashSet<String>> {
    let (schemas, names): (Vec<String>, Vec<String>) = pairs.cloned().unzip();
    let (qs, qn) = (
        quote_names(client, &schemas).await?,
        quote_names(client, &names).await?,
    );
    Ok(qs
        .into_iter()
        .zip(qn)
        .map(|(s, n)| format!("{s}.{n}"))
        .collect())
}

fn excluded_list_all(excluded: &HashSet<u32>) -> Vec<i64> {
    excluded.iter().map(|o| *o as i64).collect()
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

    #[test]
    fn parses_every_section() {
        let f = parse(
            "# comment\n[exclude-schema]\naudit\n\"Odd Schema\"\n\n[exclude-table]\npublic.logs\n\"S p\".\"T \"\"q\"\"\"\n~/^public\\.tmp_/\n\
             [exclude-index]\npublic.big_idx\n[exclude-table-data]\npublic.events\n[exclude-extension]\npostgis\n",
        )
        .unwrap();
        assert_eq!(
            f.entries(Section::ExcludeSchema)
                .iter()
                .map(|e| e.pattern.clone())
                .collect::<Vec<_>>(),
            vec![
                Pattern::Exact(vec!["audit".into()]),
                Pattern::Exact(vec!["Odd Schema".into()])
            ]
        );
        let t = f.entries(Section::ExcludeTable);
        assert_eq!(
            t[1].pattern,
            Pattern::Exact(vec!["S p".into(), "T \"q\"".into()])
        );
        assert_eq!(t[2].pattern, Pattern::Regex("^public\\.tmp_".into()));
        assert_eq!(t[2].line, 9);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "[exclude-tables]\na.b\n",
                "line 1: unknown section [exclude-tables]",
            ),
            (
                "public.t\n",
                "line 1: \"public.t\" is outside any [section]",
            ),
            (
                "[exclude-table]\nlonely\n",
                "line 2: [exclude-table] takes schema.name",
            ),
            (
                "[exclude-schema]\na.b\n",
                "line 2: [exclude-schema] takes a single name",
            ),
            (
                "[exclude-table]\n\"unterminated.t\n",
                "line 2: unterminated quote",
            ),
            (
                "[exclude-table]\n~/abc\n",
                "line 2: a pattern is written ~/regex/",
            ),
            ("[exclude-schema\n", "line 1: malformed section header"),
            (
                "[include-only-table]\na.b\n[exclude-table]\nc.d\n",
                "line 3: [include-only-table] (line 1) and [exclude-table] (line 3) contradict",
            ),
            (
                "[exclude-schema]\nx\n\n[include-only-schema]\ny\n",
                "line 4: [include-only-schema] (line 4) and [exclude-schema] (line 1) contradict",
            ),
        ];
        for (text, expected) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text:?}: {e}");
            assert!(e.starts_with("f.ini line"), "{e}");
        }
    }

    #[test]
    fn qualified_names_with_spaces() {
        assert_eq!(
            leading_qualified_name("\"Odd Schema\".\"Odd Table\".\"Id\": x"),
            vec!["\"Odd Schema\"", "\"Odd Table\"", "\"Id\""]
        );
        assert_eq!(
            leading_qualified_name("audit.record(t text)"),
            vec!["audit", "record"]
        );
        assert_eq!(
            leading_qualified_name("\"a\"\"b\".c"),
            vec!["\"a\"\"b\"", "c"]
        );
    }

    #[test]
    fn quoting_in_pg_dump_patterns() {
        assert_eq!(quote_pattern("a\"b*c"), "\"a\"\"b*c\"");
        let mut sel = Selection::default();
        sel.excluded_relations
            .insert(1, ("public".into(), "T x".into()));
        sel.excluded_data.insert(2, ("s".into(), "d".into()));
        assert_eq!(
            sel.pg_dump_args(),
            vec![
                "--exclude-table=\"public\".\"T x\"".to_string(),
                "--exclude-table-data=\"s\".\"d\"".to_string()
            ]
        );
    }

    #[test]
    fn compare_keys() {
        let sel = Selection {
            active: true,
            quoted: QuotedNames {
                schemas: HashSet::from(["audit".to_string()]),
                relations: HashSet::from(["public.\"Logs\"".to_string()]),
                indexes: HashSet::from(["public.big_idx".to_string()]),
                extensions: HashSet::from(["hstore".to_string()]),
                data: HashSet::new(),
                constraints: HashSet::from(["public.t.\"odd c\"".to_string()]),
            },
            ..Default::default()
        };
        for key in [
            "table public.\"Logs\"",
            "column public.\"Logs\".at",
            "constraint public.\"Logs\".logs_pkey",
            "schema audit",
            "function audit.f()",
            "table audit.t",
            "index public.big_idx",
            "extension hstore",
            "sequence value audit.s",
            "comment on table public.\"Logs\"",
            "comment on column at of table public.\"Logs\"",
            "comment on function audit.f()",
            "comment on extension hstore",
            "constraint public.t.\"odd c\"",
            "function audit.record(t text)",
        ] {
            assert!(sel.excludes_compare_key(key), "{key}");
        }
        for key in [
            "table public.logs",
            "index public.other",
            "schema public",
            "extension citext",
        ] {
            assert!(!sel.excludes_compare_key(key), "{key}");
        }
    }
}
