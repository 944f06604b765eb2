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
