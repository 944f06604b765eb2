//! The filters file: pgcopydb's INI format, read into `Filters`.

use super::{bad, Entry, Filters, Pattern, Section};
use anyhow::Result;
use std::collections::HashMap;
use std::path::Path;

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
                let s = section_header(path, line, l, rest)?;
                header_line.entry(s).or_insert(line);
                f.sections.entry(s).or_default();
                current = Some(s);
                continue;
            }
            let Some(s) = current else {
                return Err(bad(path, line, format!("{l:?} is outside any [section]")));
            };
            let pattern = entry_pattern(path, line, s, l)?;
            f.sections.entry(s).or_default().push(Entry {
                line,
                pattern,
                text: l.to_string(),
            });
        }
        refuse_contradictions(path, &header_line)?;
        Ok(f)
    }
}

/// The section a `[name]` line (`l`, `rest` after its bracket) opens.
fn section_header(path: &Path, line: usize, l: &str, rest: &str) -> Result<Section> {
    let name = rest
        .strip_suffix(']')
        .ok_or_else(|| bad(path, line, format!("malformed section header {l:?}")))?
        .trim();
    Section::parse(name).ok_or_else(|| {
        bad(
            path,
            line,
            format!(
                "unknown section [{name}]: use include-only-schema, exclude-schema, \
                 include-only-table, exclude-table, exclude-index, exclude-table-data, \
                 include-only-extension or exclude-extension"
            ),
        )
    })
}

/// What an entry line `l` of section `s` names: a `~/regex/`, or a name (schema-qualified in
/// the sections of tables and indexes).
fn entry_pattern(path: &Path, line: usize, s: Section, l: &str) -> Result<Pattern> {
    if let Some(re) = l.strip_prefix("~/") {
        let re = re
            .strip_suffix('/')
            .ok_or_else(|| bad(path, line, format!("a pattern is written ~/regex/: {l:?}")))?;
        if re.is_empty() {
            return Err(bad(path, line, "empty pattern"));
        }
        return Ok(Pattern::Regex(re.to_string()));
    }
    let parts = parse_name_parts(l).map_err(|e| bad(path, line, e))?;
    match (s.qualified(), parts.len()) {
        (true, 2) | (false, 1) => Ok(Pattern::Exact(parts)),
        (true, _) => Err(bad(
            path,
            line,
            format!(
                "[{}] takes schema.name (quote odd names: \"My Schema\".\"My Table\"), not {l:?}",
                s.name()
            ),
        )),
        (false, _) => Err(bad(
            path,
            line,
            format!("[{}] takes a single name, not {l:?}", s.name()),
        )),
    }
}

/// Sections that contradict each other cannot both be in the file (`header_line`: where each
/// section first appears).
fn refuse_contradictions(path: &Path, header_line: &HashMap<Section, usize>) -> Result<()> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Filters> {
        Filters::parse(Path::new("f.ini"), text)
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
}
