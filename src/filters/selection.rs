//! The selection: what is left out, as the rest of the crate asks it (pg_dump's options,
//! whether a table's rows are copied, whether a compare key is left out).

use std::collections::{BTreeSet, HashMap, HashSet};

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
    pub(super) quoted: QuotedNames,
}

#[derive(Debug, Clone, Default)]
pub(super) struct QuotedNames {
    pub(super) schemas: HashSet<String>,
    pub(super) relations: HashSet<String>,
    pub(super) indexes: HashSet<String>,
    pub(super) extensions: HashSet<String>,
    pub(super) data: HashSet<String>,
    /// `schema.table.constraint`
    pub(super) constraints: HashSet<String>,
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

    /// Whether the objects of a schema are kept (as far as the schema sections say).
    pub(super) fn schema_selected(&self, schema: &str) -> bool {
        !self.exclude_schemas.contains(schema)
            && (self.include_schemas.is_empty() || self.include_schemas.iter().any(|i| i == schema))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
