//! The rules of the selection: from the filters and what the source holds (`SourceObjects`)
//! to what is left out. No I/O here: the server has already been asked everything, down to
//! what each `~/regex/` entry matches.

use super::selection::QuotedNames;
use super::source::{Relation, SourceObjects};
use super::{bad, Entry, Filters, Pattern, Section, Selection};
use anyhow::Result;
use std::collections::{BTreeSet, HashMap, HashSet};

/// The selection `f` makes of `src`. `skip_extensions` leaves all extensions out. Warnings
/// (what is left out along with what the filters name, entries that leave nothing out) are
/// in `Selection::warnings`; an include-only entry that names nothing, or an expression the
/// server refused, is an error.
pub(super) fn select(f: &Filters, src: &SourceObjects, skip_extensions: bool) -> Result<Selection> {
    let mut sel = Selection {
        active: true,
        ..Default::default()
    };
    // The order of the steps is the order of the warnings, and says which error wins.
    choose_schemas(f, src, &mut sel)?;
    let rels = Relations::new(src);
    let mut excluded = relations_left_out(f, src, &rels, &sel)?;
    sel.warnings = views_left_out(src, &rels, &sel, &mut excluded);
    for oid in &excluded {
        if let Some(r) = rels.by_oid.get(oid) {
            sel.excluded_relations
                .insert(*oid, (r.schema.clone(), r.name.clone()));
        }
    }
    sel.excluded_data = data_left_out(f, src, &rels, &excluded)?;
    sel.warnings.extend(check_entries(f, src)?);
    let dropped = indexes_left_out(f, src, &excluded, &mut sel)?;
    constraints_left_out(src, &excluded, &dropped, &mut sel);
    sel.excluded_extensions = extensions_left_out(f, src, skip_extensions)?;
    sel.kept_extensions = src
        .extensions
        .iter()
        .filter(|e| !sel.excluded_extensions.contains(*e))
        .cloned()
        .collect();
    sel.quoted = quoted_names(src, &sel);
    Ok(sel)
}

/// `[include-only-schema]` and `[exclude-schema]`.
fn choose_schemas(f: &Filters, src: &SourceObjects, sel: &mut Selection) -> Result<()> {
    if f.has(Section::IncludeOnlySchema) {
        let e = f.entries(Section::IncludeOnlySchema);
        sel.include_schemas = pick(e, &src.schemas, &regex_hits(src, e)?)
            .into_iter()
            .collect();
    }
    if f.has(Section::ExcludeSchema) {
        let e = f.entries(Section::ExcludeSchema);
        sel.exclude_schemas = pick(e, &src.schemas, &regex_hits(src, e)?);
    }
    Ok(())
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

/// The names the entries' regular expressions matched (on the server); an expression the
/// server refused is the usage error naming its line.
fn regex_hits(src: &SourceObjects, entries: &[Entry]) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for e in entries {
        if let Pattern::Regex(_) = &e.pattern {
            out.extend(src.matched(e)?.into_iter().cloned());
        }
    }
    Ok(out)
}

/// Whether an entry names `schema.name` exactly.
fn names_exactly(e: &Entry, schema: &str, name: &str) -> bool {
    matches!(&e.pattern, Pattern::Exact(p) if p.len() == 2 && p[0] == schema && p[1] == name)
}

/// The source's relations, as the table rules look them up.
struct Relations<'a> {
    all: &'a [Relation],
    /// Those a table entry can name.
    tables: Vec<&'a Relation>,
    by_oid: HashMap<u32, &'a Relation>,
}

impl<'a> Relations<'a> {
    fn new(src: &'a SourceObjects) -> Relations<'a> {
        Relations {
            all: &src.relations,
            tables: src.relations.iter().filter(|r| r.is_table()).collect(),
            by_oid: src.relations.iter().map(|r| (r.oid, r)).collect(),
        }
    }

    /// The relations the entries name, exactly or by a regular expression.
    fn picked(&self, src: &SourceObjects, entries: &[Entry]) -> Result<HashSet<u32>> {
        let hits = regex_hits(src, entries)?;
        Ok(self
            .tables
            .iter()
            .filter(|r| {
                hits.contains(&r.qualified())
                    || entries.iter().any(|e| names_exactly(e, &r.schema, &r.name))
            })
            .map(|r| r.oid)
            .collect())
    }

    /// Whether `r` is a partition (a table's) of a partitioned table, `p`.
    fn partition_of(&self, r: &Relation, p: u32) -> bool {
        matches!(r.kind, 'r' | 'p' | 'f') && self.by_oid.get(&p).is_some_and(|pr| pr.kind == 'p')
    }

    /// `keep` with the parents of its partitions and the partitions of its partitioned tables.
    fn with_partition_family(&self, mut keep: HashSet<u32>) -> HashSet<u32> {
        loop {
            let before = keep.len();
            for r in self.all {
                if let Some(p) = r.parent.filter(|p| self.partition_of(r, *p)) {
                    if keep.contains(&r.oid) {
                        keep.insert(p);
                    }
                    if keep.contains(&p) {
                        keep.insert(r.oid);
                    }
                }
            }
            if keep.len() == before {
                return keep;
            }
        }
    }

    /// Adds to `excluded` the partitions of the partitioned tables in it and the sequences
    /// its tables own.
    fn add_partitions_and_sequences(&self, excluded: &mut HashSet<u32>) {
        loop {
            let before = excluded.len();
            for r in self.all {
                if let Some(p) = r.parent {
                    if excluded.contains(&p)
                        && (r.kind == 'S' || self.by_oid.get(&p).is_some_and(|pr| pr.kind == 'p'))
                    {
                        excluded.insert(r.oid);
                    }
                }
            }
            if excluded.len() == before {
                return;
            }
        }
    }
}

/// The relations left out by the schema and table sections, with the partitions of
/// partitioned tables left out and the sequences of tables left out (a partition kept keeps
/// its parents, a partitioned table kept its partitions).
fn relations_left_out(
    f: &Filters,
    src: &SourceObjects,
    rels: &Relations,
    sel: &Selection,
) -> Result<HashSet<u32>> {
    let mut excluded: HashSet<u32> = rels
        .all
        .iter()
        .filter(|r| !sel.schema_selected(&r.schema))
        .map(|r| r.oid)
        .collect();
    if f.has(Section::ExcludeTable) {
        excluded.extend(rels.picked(src, f.entries(Section::ExcludeTable))?);
    }
    if f.has(Section::IncludeOnlyTable) {
        let picked = rels.picked(src, f.entries(Section::IncludeOnlyTable))?;
        let keep = rels.with_partition_family(picked);
        for r in rels.all {
            if matches!(r.kind, 'r' | 'p' | 'f') && !keep.contains(&r.oid) {
                excluded.insert(r.oid);
            }
        }
    }
    rels.add_partitions_and_sequences(&mut excluded);
    Ok(excluded)
}

/// Adds to `excluded` the views and materialized views that read what it holds, directly or
/// through other views: they could not be created. Returns a warning for each (unless its
/// schema is left out anyway), by name.
fn views_left_out(
    src: &SourceObjects,
    rels: &Relations,
    sel: &Selection,
    excluded: &mut HashSet<u32>,
) -> Vec<String> {
    let mut readers: HashMap<u32, Vec<u32>> = HashMap::new();
    for (reader, read) in &src.rule_reads {
        readers.entry(*read).or_default().push(*reader);
    }
    let mut todo: Vec<u32> = excluded.iter().copied().collect();
    let mut found: Vec<u32> = Vec::new();
    while let Some(oid) = todo.pop() {
        for reader in readers.get(&oid).into_iter().flatten() {
            if excluded.insert(*reader) {
                found.push(*reader);
                todo.push(*reader);
            }
        }
    }
    let mut warned: Vec<&Relation> = found
        .iter()
        .filter_map(|oid| rels.by_oid.get(oid).copied())
        .filter(|r| sel.schema_selected(&r.schema))
        .collect();
    warned.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    warned
        .into_iter()
        .map(|r| {
            format!(
                "view {} is left out: it reads a table that is left out",
                r.qualified()
            )
        })
        .collect()
}

/// `[exclude-table-data]`: the relations kept whose rows are not copied.
fn data_left_out(
    f: &Filters,
    src: &SourceObjects,
    rels: &Relations,
    excluded: &HashSet<u32>,
) -> Result<HashMap<u32, (String, String)>> {
    if !f.has(Section::ExcludeTableData) {
        return Ok(HashMap::new());
    }
    let picked = rels.picked(src, f.entries(Section::ExcludeTableData))?;
    Ok(picked
        .into_iter()
        .filter(|oid| !excluded.contains(oid))
        .map(|oid| {
            let r = rels.by_oid[&oid];
            (oid, (r.schema.clone(), r.name.clone()))
        })
        .collect())
}

/// Sets the indexes left out: those `[exclude-index]` names on relations kept, with the
/// indexes of their partitions (as DROP INDEX would drop them), and those of relations left
/// out. Returns the ones dropped by name (and their partitions'), not with their relation.
fn indexes_left_out(
    f: &Filters,
    src: &SourceObjects,
    excluded: &HashSet<u32>,
    sel: &mut Selection,
) -> Result<HashSet<u32>> {
    let mut dropped = HashSet::new();
    if f.has(Section::ExcludeIndex) {
        let e = f.entries(Section::ExcludeIndex);
        let hits = regex_hits(src, e)?;
        for i in &src.indexes {
            let named = hits.contains(&i.qualified())
                || e.iter().any(|e| names_exactly(e, &i.schema, &i.name));
            if named && !excluded.contains(&i.table) {
                sel.excluded_indexes
                    .insert(i.oid, (i.schema.clone(), i.name.clone()));
                dropped.insert(i.oid);
            }
        }
        let partitions = index_partitions(src, &dropped);
        for i in src.indexes.iter().filter(|i| partitions.contains(&i.oid)) {
            sel.excluded_indexes
                .insert(i.oid, (i.schema.clone(), i.name.clone()));
            dropped.insert(i.oid);
        }
    }
    for i in &src.indexes {
        if excluded.contains(&i.table) {
            sel.excluded_indexes
                .insert(i.oid, (i.schema.clone(), i.name.clone()));
        }
    }
    Ok(dropped)
}

/// The indexes of partitions that belong to the partitioned indexes among `parents`, at every
/// level.
fn index_partitions(src: &SourceObjects, parents: &HashSet<u32>) -> HashSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (child, parent) in &src.index_parents {
        children.entry(*parent).or_default().push(*child);
    }
    let mut found = HashSet::new();
    let mut todo: Vec<u32> = parents.iter().copied().collect();
    while let Some(oid) = todo.pop() {
        for child in children.get(&oid).into_iter().flatten() {
            if found.insert(*child) {
                todo.push(*child);
            }
        }
    }
    found
}

/// The constraints the indexes `dropped` stand for go with them; so do the foreign keys of
/// relations kept that reference a relation left out or rely on an index dropped (with a
/// warning each, in the server's order).
fn constraints_left_out(
    src: &SourceObjects,
    excluded: &HashSet<u32>,
    dropped: &HashSet<u32>,
    sel: &mut Selection,
) {
    for c in &src.index_constraints {
        if dropped.contains(&c.index) {
            sel.excluded_constraints.insert(c.oid);
        }
    }
    for fk in &src.foreign_keys {
        if excluded.contains(&fk.table) {
            continue;
        }
        let what = if excluded.contains(&fk.referenced) {
            format!("table {}", fk.referenced_name)
        } else if dropped.contains(&fk.index) {
            format!("index {}", fk.index_name)
        } else {
            continue;
        };
        sel.excluded_constraints.insert(fk.oid);
        sel.warnings.push(format!(
            "foreign key {} on {} is left out: it references {what}, which is left out",
            fk.name, fk.table_name
        ));
    }
}

/// The extensions left out: all with --skip-extensions, else as the extension sections say.
pub(super) fn extensions_left_out(
    f: &Filters,
    src: &SourceObjects,
    skip_extensions: bool,
) -> Result<BTreeSet<String>> {
    let extensions = &src.extensions;
    Ok(if skip_extensions {
        extensions.iter().cloned().collect()
    } else if f.has(Section::IncludeOnlyExtension) {
        let e = f.entries(Section::IncludeOnlyExtension);
        let keep = pick(e, extensions, &regex_hits(src, e)?);
        extensions
            .iter()
            .filter(|x| !keep.contains(*x))
            .cloned()
            .collect()
    } else if f.has(Section::ExcludeExtension) {
        let e = f.entries(Section::ExcludeExtension);
        pick(e, extensions, &regex_hits(src, e)?)
    } else {
        BTreeSet::new()
    })
}

/// The names left out, quoted as the server quotes them.
fn quoted_names(src: &SourceObjects, sel: &Selection) -> QuotedNames {
    let pairs = |m: &HashMap<u32, (String, String)>| -> HashSet<String> {
        m.values()
            .map(|(s, n)| format!("{}.{}", src.quote(s), src.quote(n)))
            .collect()
    };
    let constraints = src
        .index_constraints
        .iter()
        .map(|c| (c.oid, Some(&c.quoted)))
        .chain(
            src.foreign_keys
                .iter()
                .map(|fk| (fk.oid, fk.quoted.as_ref())),
        );
    QuotedNames {
        schemas: src
            .schemas
            .iter()
            .filter(|s| !sel.schema_selected(s))
            .map(|s| src.quote(s))
            .collect(),
        relations: pairs(&sel.excluded_relations),
        indexes: pairs(&sel.excluded_indexes),
        data: pairs(&sel.excluded_data),
        constraints: constraints
            .filter(|(oid, _)| sel.excluded_constraints.contains(oid))
            .filter_map(|(_, q)| q.cloned())
            .collect(),
        extensions: sel
            .excluded_extensions
            .iter()
            .map(|e| src.quote(e))
            .collect(),
    }
}

/// Checks that every entry of the filters names something: an include-only entry that names
/// nothing is a typo, refused (a usage error naming the file, line and entry, before anything
/// is written); an exclude entry that names nothing is a warning.
pub(super) fn check_entries(f: &Filters, src: &SourceObjects) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for section in [
        Section::IncludeOnlySchema,
        Section::ExcludeSchema,
        Section::IncludeOnlyTable,
        Section::ExcludeTable,
        Section::ExcludeTableData,
        Section::ExcludeIndex,
        Section::IncludeOnlyExtension,
        Section::ExcludeExtension,
    ] {
        let (kind, unmatched) = matching_nothing(src, section, f.entries(section))?;
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

/// What the entries of a section name (schema, table, index, extension), and those of them
/// that name nothing of the source.
fn matching_nothing<'a>(
    src: &SourceObjects,
    section: Section,
    entries: &'a [Entry],
) -> Result<(&'static str, Vec<&'a Entry>)> {
    let kind = match section {
        Section::IncludeOnlySchema | Section::ExcludeSchema => "schema",
        Section::IncludeOnlyTable | Section::ExcludeTable | Section::ExcludeTableData => "table",
        Section::ExcludeIndex => "index",
        Section::IncludeOnlyExtension | Section::ExcludeExtension => "extension",
    };
    let mut unmatched = Vec::new();
    for e in entries {
        let matched = match &e.pattern {
            Pattern::Exact(parts) => names_something(src, section, parts),
            Pattern::Regex(_) => !src.matched(e)?.is_empty(),
        };
        if !matched {
            unmatched.push(e);
        }
    }
    Ok((kind, unmatched))
}

/// Whether the source has an object of the kind `section` names (schema, table, index,
/// extension) named `p`.
fn names_something(src: &SourceObjects, section: Section, p: &[String]) -> bool {
    let one = |names: &[String]| p.len() == 1 && names.contains(&p[0]);
    let two = |schema: &String, name: &String| p.len() == 2 && *schema == p[0] && *name == p[1];
    match section {
        Section::IncludeOnlySchema | Section::ExcludeSchema => one(&src.schemas),
        Section::IncludeOnlyTable | Section::ExcludeTable | Section::ExcludeTableData => {
            src.relations.iter().any(|r| two(&r.schema, &r.name))
        }
        Section::ExcludeIndex => src.indexes.iter().any(|i| two(&i.schema, &i.name)),
        Section::IncludeOnlyExtension | Section::ExcludeExtension => one(&src.extensions),
    }
}

#[cfg(test)]
mod tests {
    use super::super::source::{ForeignKey, Index, IndexConstraint};
    use super::*;
    use std::path::Path;

    fn rel(oid: u32, qualified: &str, kind: char, parent: Option<u32>) -> Relation {
        let (schema, name) = qualified.split_once('.').unwrap();
        Relation {
            oid,
            schema: schema.into(),
            name: name.into(),
            kind,
            parent,
        }
    }

    fn index(oid: u32, qualified: &str, table: u32) -> Index {
        let (schema, name) = qualified.split_once('.').unwrap();
        Index {
            oid,
            schema: schema.into(),
            name: name.into(),
            table,
        }
    }

    fn fk(
        oid: u32,
        name: &str,
        (table, t): (u32, &str),
        (referenced, r): (u32, &str),
    ) -> ForeignKey {
        let (index, index_name) = if referenced == 1 {
            (100, "customers_pkey")
        } else {
            (101, "orders_pkey")
        };
        ForeignKey {
            oid,
            name: name.into(),
            table,
            table_name: t.into(),
            referenced,
            referenced_name: r.into(),
            index,
            index_name: index_name.into(),
            quoted: Some(format!("{t}.{name}")),
        }
    }

    /// A small source:
    /// - public: customers (1), orders (2) with the sequence it owns (3), events (4),
    ///   partitioned, with the partitions events_2024 (5) and events_2025 (6), itself
    ///   partitioned with events_2025_q1 (7); customer_view (8) reads customers,
    ///   customer_summary (9) reads customer_view; via_ext (13) reads customers through a view
    ///   of an extension (50, not a relation a filter sees); a sequence of its own (12);
    /// - audit: log (10), with a foreign key to orders; "Odd": "Cfg" (11);
    /// - indexes: the primary keys of customers (100) and orders (101), one on
    ///   orders (102), the partitioned events_at_idx (103) with its partitions' indexes (104,
    ///   105, and 106 under 105), audit's log_pkey (107);
    /// - extensions hstore, citext, postgis.
    fn source() -> SourceObjects {
        let mut src = SourceObjects {
            schemas: vec!["Odd".into(), "audit".into(), "public".into()],
            relations: vec![
                rel(1, "public.customers", 'r', None),
                rel(2, "public.orders", 'r', None),
                rel(3, "public.orders_id_seq", 'S', Some(2)),
                rel(4, "public.events", 'p', None),
                rel(5, "public.events_2024", 'r', Some(4)),
                rel(6, "public.events_2025", 'p', Some(4)),
                rel(7, "public.events_2025_q1", 'r', Some(6)),
                rel(8, "public.customer_view", 'v', None),
                rel(9, "public.customer_summary", 'm', None),
                rel(10, "audit.log", 'r', None),
                rel(11, "Odd.Cfg", 'r', None),
                rel(12, "public.standalone_seq", 'S', None),
                rel(13, "public.via_ext", 'v', None),
            ],
            indexes: vec![
                index(100, "public.customers_pkey", 1),
                index(101, "public.orders_pkey", 2),
                index(102, "public.orders_customer_idx", 2),
                index(103, "public.events_at_idx", 4),
                index(104, "public.events_2024_at_idx", 5),
                index(105, "public.events_2025_at_idx", 6),
                index(106, "public.events_2025_q1_at_idx", 7),
                index(107, "audit.log_pkey", 10),
            ],
            extensions: vec!["citext".into(), "hstore".into(), "postgis".into()],
            rule_reads: vec![(8, 1), (9, 8), (50, 1), (13, 50)],
            index_parents: vec![(104, 103), (105, 103), (106, 105)],
            index_constraints: vec![
                IndexConstraint {
                    oid: 200,
                    index: 100,
                    quoted: "public.customers.customers_pkey".into(),
                },
                IndexConstraint {
                    oid: 201,
                    index: 101,
                    quoted: "public.orders.orders_pkey".into(),
                },
            ],
            foreign_keys: vec![
                fk(300, "orders_customer_fkey", (2, "orders"), (1, "customers")),
                fk(301, "log_order_fkey", (10, "audit.log"), (2, "orders")),
            ],
            ..Default::default()
        };
        let mut names: Vec<String> = src.schemas.clone();
        names.extend(src.extensions.clone());
        names.extend(src.relations.iter().map(|r| r.name.clone()));
        names.extend(src.indexes.iter().map(|i| i.name.clone()));
        src.quoted = names
            .into_iter()
            .map(|n| {
                let q = if n.chars().any(|c| c.is_uppercase()) {
                    format!("\"{n}\"")
                } else {
                    n.clone()
                };
                (n, q)
            })
            .collect();
        src
    }

    fn filters(text: &str) -> Filters {
        Filters::parse(Path::new("f.ini"), text).unwrap()
    }

    /// The selection of `text` from `src`, with what the expressions on `lines` matched.
    fn select_with(text: &str, src: &mut SourceObjects, matches: &[(usize, &[&str])]) -> Selection {
        for (line, names) in matches {
            let names = names.iter().map(|n| n.to_string()).collect();
            src.matches.by_line.insert(*line, names);
        }
        select(&filters(text), src, false).unwrap()
    }

    fn sel(text: &str) -> Selection {
        select_with(text, &mut source(), &[])
    }

    fn left_out(sel: &Selection) -> Vec<u32> {
        let mut v: Vec<u32> = sel.excluded_relations.keys().copied().collect();
        v.sort();
        v
    }

    fn indexes_left_out(sel: &Selection) -> Vec<u32> {
        let mut v: Vec<u32> = sel.excluded_indexes.keys().copied().collect();
        v.sort();
        v
    }

    fn constraints_left_out(sel: &Selection) -> Vec<u32> {
        let mut v: Vec<u32> = sel.excluded_constraints.iter().copied().collect();
        v.sort();
        v
    }

    #[test]
    fn include_only_schema() {
        let s = sel("[include-only-schema]\npublic\n");
        assert!(s.active);
        assert_eq!(s.include_schemas, vec!["public".to_string()]);
        assert_eq!(left_out(&s), vec![10, 11]);
        assert_eq!(indexes_left_out(&s), vec![107]);
        // The foreign key of audit.log goes with its table: no warning.
        assert!(s.excluded_constraints.is_empty());
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert!(s.excludes_compare_key("schema audit"));
        assert!(s.excludes_compare_key("table \"Odd\".\"Cfg\""));
        assert!(!s.excludes_compare_key("table public.orders"));
        assert_eq!(s.pg_dump_args()[0], "--schema=\"public\"");
        // Only some schemas are dumped: the extensions are named.
        assert!(s
            .pg_dump_args()
            .contains(&"--extension=\"hstore\"".to_string()));
    }

    #[test]
    fn exclude_schema() {
        let s = sel("[exclude-schema]\n\"Odd\"\n");
        assert_eq!(s.exclude_schemas, BTreeSet::from(["Odd".to_string()]));
        assert_eq!(left_out(&s), vec![11]);
        assert!(s.excludes_compare_key("function \"Odd\".f()"));
        assert!(!s.excludes_compare_key("schema audit"));
        // Tables of a schema left out are not named one by one to pg_dump.
        assert_eq!(
            s.pg_dump_args(),
            vec!["--exclude-schema=\"Odd\"".to_string()]
        );
    }

    #[test]
    fn include_only_table_brings_the_partition_family() {
        // A partition brings its parents, and they their partitions.
        let s = sel("[include-only-table]\npublic.events_2025_q1\n");
        // Everything else that is a table goes, with the sequence of orders and the views of
        // customers; a sequence of its own stays.
        assert_eq!(left_out(&s), vec![1, 2, 3, 8, 9, 10, 11, 13]);
        assert!(s.table_selected(4) && s.table_selected(5) && s.table_selected(12));
        assert_eq!(indexes_left_out(&s), vec![100, 101, 102, 107]);
        // The foreign keys go with their tables, the constraints with their indexes' tables.
        assert!(s.excluded_constraints.is_empty());
        let s = sel("[include-only-table]\npublic.events\n");
        assert!([4, 5, 6, 7].iter().all(|o| s.table_selected(*o)));
        assert!(!s.table_selected(1));
    }

    #[test]
    fn exclude_table_takes_partitions_sequences_and_views_along() {
        let s = sel("[exclude-table]\npublic.events_2025\n");
        assert_eq!(left_out(&s), vec![6, 7]);
        assert_eq!(indexes_left_out(&s), vec![105, 106]);
        let s = sel("[exclude-table]\npublic.orders\n");
        assert_eq!(left_out(&s), vec![2, 3]);
        assert_eq!(indexes_left_out(&s), vec![101, 102]);
        // The constraint of an index that goes with its table is not listed.
        assert_eq!(constraints_left_out(&s), vec![301]);
        assert_eq!(
            s.warnings,
            vec![
                "foreign key log_order_fkey on audit.log is left out: it references table \
                 orders, which is left out"
            ]
        );
        assert!(s.excludes_compare_key("constraint audit.log.log_order_fkey"));
        assert!(s.excludes_compare_key("sequence value public.orders_id_seq"));
    }

    #[test]
    fn views_reading_what_is_left_out_go_too_recursively() {
        let s = sel("[exclude-table]\npublic.customers\n");
        // customer_summary reads customer_view; via_ext reads customers through a view that
        // is not a relation the filters see (50): it is left out, not named.
        assert_eq!(left_out(&s), vec![1, 8, 9, 13]);
        assert_eq!(
            s.warnings,
            vec![
                "view public.customer_summary is left out: it reads a table that is left out",
                "view public.customer_view is left out: it reads a table that is left out",
                "view public.via_ext is left out: it reads a table that is left out",
                "foreign key orders_customer_fkey on orders is left out: it references table \
                 customers, which is left out",
            ]
        );
        assert_eq!(constraints_left_out(&s), vec![300]);
        assert!(s.excludes_compare_key("materialized view public.customer_summary"));
    }

    #[test]
    fn exclude_index_takes_its_constraint_and_the_foreign_keys_on_it() {
        let s = sel("[exclude-index]\npublic.orders_pkey\n");
        assert!(left_out(&s).is_empty());
        assert_eq!(indexes_left_out(&s), vec![101]);
        assert_eq!(constraints_left_out(&s), vec![201, 301]);
        assert_eq!(
            s.warnings,
            vec![
                "foreign key log_order_fkey on audit.log is left out: it references index \
                 orders_pkey, which is left out"
            ]
        );
        assert!(s.excludes_compare_key("index public.orders_pkey"));
        assert!(s.excludes_compare_key("constraint public.orders.orders_pkey"));
        assert!(!s.excludes_compare_key("constraint public.customers.customers_pkey"));
    }

    #[test]
    fn a_partitioned_index_takes_its_partitions_indexes() {
        let s = sel("[exclude-index]\npublic.events_at_idx\n");
        assert_eq!(indexes_left_out(&s), vec![103, 104, 105, 106]);
        let s = sel("[exclude-index]\npublic.events_2025_at_idx\n");
        assert_eq!(indexes_left_out(&s), vec![105, 106]);
    }

    #[test]
    fn an_excluded_index_of_a_table_left_out_goes_with_its_table() {
        let s = sel("[exclude-schema]\naudit\n[exclude-index]\naudit.log_pkey\n");
        assert_eq!(indexes_left_out(&s), vec![107]);
        assert!(s.excluded_constraints.is_empty());
    }

    #[test]
    fn exclude_table_data() {
        let s = sel(
            "[exclude-table]\npublic.customers\n[exclude-table-data]\npublic.orders\n\
             public.customers\npublic.customer_summary\n",
        );
        let mut data: Vec<u32> = s.excluded_data.keys().copied().collect();
        data.sort();
        // customers is left out altogether, and customer_summary with it.
        assert_eq!(data, vec![2]);
        assert!(s.table_selected(2) && !s.copies_rows_of(2));
        assert!(!s.copies_rows_of_name("public", "orders"));
        assert!(s.copies_rows_of_name("public", "events"));
        assert!(s
            .pg_dump_args()
            .contains(&"--exclude-table-data=\"public\".\"orders\"".to_string()));
        let s = sel("[exclude-table-data]\npublic.customer_summary\n");
        assert!(s.unpopulated_by_design("materialized view public.customer_summary"));
    }

    #[test]
    fn extensions() {
        let all = || BTreeSet::from(["citext", "hstore", "postgis"].map(String::from));
        let s = sel("[include-only-extension]\nhstore\n");
        assert_eq!(
            s.excluded_extensions,
            BTreeSet::from(["citext", "postgis"].map(String::from))
        );
        assert_eq!(s.kept_extensions, BTreeSet::from(["hstore".to_string()]));
        assert!(s.excludes_compare_key("extension citext"));
        assert!(!s.excludes_compare_key("extension hstore"));
        let s = sel("[exclude-extension]\npostgis\n");
        assert_eq!(
            s.excluded_extensions,
            BTreeSet::from(["postgis".to_string()])
        );
        let s = sel("[exclude-schema]\naudit\n");
        assert!(s.excluded_extensions.is_empty());
        assert_eq!(s.kept_extensions, all());
        let f = filters("[include-only-extension]\nhstore\n");
        let s = select(&f, &source(), true).unwrap();
        assert_eq!(s.excluded_extensions, all());
        assert!(s.kept_extensions.is_empty());
        assert_eq!(extensions_left_out(&f, &source(), true).unwrap(), all());
        assert_eq!(
            extensions_left_out(&f, &source(), false).unwrap(),
            BTreeSet::from(["citext", "postgis"].map(String::from))
        );
    }

    #[test]
    fn patterns_use_what_the_server_matched() {
        let mut src = source();
        let s = select_with(
            "[exclude-table]\n~/^public\\.events_2/\n[exclude-index]\n~/orders/\n\
             [exclude-schema]\n~/^O/\n[exclude-extension]\n~/^post/\n",
            &mut src,
            &[
                (2, &["public.events_2024", "public.events_2025"]),
                (4, &["public.orders_customer_idx"]),
                (6, &["Odd"]),
                (8, &["postgis"]),
            ],
        );
        assert_eq!(left_out(&s), vec![5, 6, 7, 11]);
        assert!(s.excluded_indexes.contains_key(&102));
        assert!(!s.excluded_indexes.contains_key(&101));
        assert_eq!(
            s.excluded_extensions,
            BTreeSet::from(["postgis".to_string()])
        );
        // An expression that matches nothing leaves nothing out, with a warning.
        let s = select_with("[exclude-table]\n~/^nothing/\n", &mut source(), &[]);
        assert_eq!(
            s.warnings,
            vec![
                "f.ini line 2: [exclude-table] ~/^nothing/ matches no table of the source; it \
                 leaves nothing out"
            ]
        );
    }

    #[test]
    fn an_expression_the_server_refused_is_a_usage_error() {
        let mut src = source();
        src.matches.refused = Some((2, "f.ini line 2: ERROR: invalid regular expression".into()));
        let e = select(&filters("[exclude-table]\n~/([/\n"), &src, false).unwrap_err();
        assert!(crate::error::is(&e, crate::error::Class::Usage));
        assert_eq!(
            e.to_string(),
            "f.ini line 2: ERROR: invalid regular expression"
        );
        // As before the split: an include-only entry naming nothing is reported before an
        // expression of [exclude-index] the server refused.
        src.matches.refused = Some((4, "f.ini line 4: ERROR: invalid regular expression".into()));
        let f = filters("[include-only-table]\npublic.nosuch\n[exclude-index]\n~/(/\n");
        let e = select(&f, &src, false).unwrap_err().to_string();
        assert!(
            e.contains("line 2: [include-only-table] public.nosuch matches no table"),
            "{e}"
        );
    }

    #[test]
    fn entries_that_name_nothing() {
        let src = source();
        let f = filters(
            "[exclude-table]\npublic.nosuchtable\npublic.orders\n[exclude-index]\npublic.x\n\
             [exclude-extension]\nplv8\n",
        );
        assert_eq!(
            check_entries(&f, &src).unwrap(),
            vec![
                "f.ini line 2: [exclude-table] public.nosuchtable matches no table of the \
                 source; it leaves nothing out",
                "f.ini line 5: [exclude-index] public.x matches no index of the source; it \
                 leaves nothing out",
                "f.ini line 7: [exclude-extension] plv8 matches no extension of the source; it \
                 leaves nothing out",
            ]
        );
        for (text, expected) in [
            (
                "[include-only-schema]\npublic\nsales\n",
                "f.ini line 3: [include-only-schema] sales matches no schema of the source: \
                 correct it (a name with capitals or spaces is written in double quotes, a \
                 table as schema.table) or remove it",
            ),
            (
                "[include-only-table]\n~/^nothing/\n",
                "f.ini line 2: [include-only-table] ~/^nothing/ matches no table",
            ),
            (
                "[include-only-extension]\ncitex\n",
                "f.ini line 2: [include-only-extension] citex matches no extension",
            ),
        ] {
            let e = check_entries(&filters(text), &src).unwrap_err();
            assert!(crate::error::is(&e, crate::error::Class::Usage));
            assert!(e.to_string().starts_with(expected), "{e}");
            let e = select(&filters(text), &src, false).unwrap_err();
            assert!(e.to_string().starts_with(expected), "{e}");
        }
    }

    #[test]
    fn warnings_come_in_order() {
        // Views first, then entries naming nothing, then foreign keys.
        let s = sel("[exclude-table]\npublic.customers\npublic.none\n");
        assert_eq!(s.warnings.len(), 5);
        assert!(s.warnings[2].starts_with("view public.via_ext"));
        assert!(s.warnings[3].contains("public.none matches no table"));
        assert!(s.warnings[4].starts_with("foreign key orders_customer_fkey"));
    }
}
