//! Splits SQL scripts (pg_restore's output) into statements with a lexer that knows
//! PostgreSQL's quoting, never by line patterns.
//!
//! A statement ends at a semicolon outside string literals (standard, `E''` with backslash
//! escapes, `U&''`, `B''`, `X''`), dollar quotes with any tag, quoted identifiers, comments
//! (`--` to the end of the line, nested `/* */`), parentheses, and the `BEGIN ... END` body of
//! a SQL-standard function (`CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ATOMIC`, counted
//! as psql counts it). Comments and psql meta-commands (`\restrict`) are recognised only
//! between statements. Each statement is a slice of the script: every byte of it, CR LF and
//! backslashes included, is what pg_restore wrote.

/// A piece of a script, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A comment between statements (one `--` line, or one `/* */` block).
    Comment(&'a str),
    /// A psql meta-command between statements (a backslash to the end of its line).
    Meta(&'a str),
    /// A statement, up to and including its semicolon (the last may have none).
    Statement(&'a str),
}

/// The pieces of `script`, one at a time. Whitespace between pieces is left out.
pub fn pieces(script: &str) -> Pieces<'_> {
    Pieces {
        script,
        i: 0,
        std_strings: true,
    }
}

/// The pieces of a script, lexed as they are asked for (a script of many thousand entries is
/// never held twice).
pub struct Pieces<'a> {
    script: &'a str,
    i: usize,
    /// `standard_conforming_strings` as the script has set it so far.
    std_strings: bool,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        let script = self.script;
        let b = script.as_bytes();
        while self.i < b.len() {
            let i = self.i;
            let c = b[i];
            if c.is_ascii_whitespace() {
                self.i += 1;
            } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
                self.i = line_end(b, i);
                return Some(Piece::Comment(&script[i..self.i]));
            } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
                self.i = block_comment_end(b, i);
                return Some(Piece::Comment(&script[i..self.i]));
            } else if c == b'\\' {
                self.i = line_end(b, i);
                return Some(Piece::Meta(&script[i..self.i]));
            } else if c == b';' {
                self.i += 1; // an empty statement
            } else {
                self.i = statement_end(b, i, self.std_strings);
                let text = script[i..self.i].trim_end();
                if let Some(on) = standard_conforming_strings(text) {
                    self.std_strings = on;
                }
                return Some(Piece::Statement(text));
            }
        }
        None
    }
}

/// The statements of `script`, in order.
pub fn statements(script: &str) -> Vec<&str> {
    pieces(script)
        .filter_map(|p| match p {
            Piece::Statement(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// The lowercase name a `SET name ...` statement sets, if that is what it is.
pub fn set_name(statement: &str) -> Option<String> {
    let mut words = statement.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("set") {
        return None;
    }
    let name: String = words
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "" | "session" | "local" | "role" | "constraints" | "transaction" => None,
        _ => Some(lower),
    }
}

/// `SET standard_conforming_strings = on|off` changes how later string literals are read.
fn standard_conforming_strings(statement: &str) -> Option<bool> {
    let flat: String = statement
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\'' && *c != '"' && *c != ';')
        .collect::<String>()
        .to_ascii_lowercase();
    let value = flat
        .strip_prefix("setstandard_conforming_strings")?
        .trim_start_matches('=')
        .trim_start_matches("to");
    match value {
        "on" | "true" | "1" | "yes" => Some(true),
        "off" | "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn line_end(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|c| *c == b'\n')
        .map_or(b.len(), |p| from + p)
}

/// The end of the (nested) block comment starting at `from`.
fn block_comment_end(b: &[u8], from: usize) -> usize {
    let mut depth = 0;
    let mut i = from;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// The end of a quoted run opened by `quote` at `from`: a doubled quote stays inside, and with
/// `backslash` a backslash escapes the next byte.
fn quoted_end(b: &[u8], from: usize, quote: u8, backslash: bool) -> usize {
    let mut i = from + 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
        } else if b[i] == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The `$tag$` opening a dollar quote at `from`, if there is one.
fn dollar_tag(b: &[u8], from: usize) -> Option<&[u8]> {
    let mut i = from + 1;
    if let Some(&c) = b.get(i) {
        if c != b'$' && !is_ident_start(c) {
            return None;
        }
    }
    while let Some(&c) = b.get(i) {
        if c == b'$' {
            return Some(&b[from..=i]);
        }
        if !(is_ident_start(c) || c.is_ascii_digit()) {
            return None;
        }
        i += 1;
    }
    None
}

/// What a statement's first words say about it: CREATE [OR REPLACE] FUNCTION|PROCEDURE
/// statements may hold `BEGIN ATOMIC ... END` bodies with semicolons inside.
#[derive(Default)]
struct Words {
    first: Vec<String>,
    begin_depth: usize,
}

impl Words {
    fn see(&mut self, word: &str) {
        if self.first.len() < 4 {
            self.first.push(word.to_ascii_lowercase());
        }
        if !self.creates_routine() {
            return;
        }
        if word.eq_ignore_ascii_case("begin") {
            self.begin_depth += 1;
        } else if word.eq_ignore_ascii_case("case") {
            if self.begin_depth > 0 {
                self.begin_depth += 1;
            }
        } else if word.eq_ignore_ascii_case("end") {
            self.begin_depth = self.begin_depth.saturating_sub(1);
        }
    }

    fn creates_routine(&self) -> bool {
        let w: Vec<&str> = self.first.iter().map(String::as_str).collect();
        let routine = |s: Option<&&str>| matches!(s, Some(&"function") | Some(&"procedure"));
        w.first() == Some(&"create")
            && (routine(w.get(1))
                || (w.get(1) == Some(&"or") && w.get(2) == Some(&"replace") && routine(w.get(3))))
    }
}

/// The end (just past its semicolon, or the end of the script) of the statement at `from`.
fn statement_end(b: &[u8], from: usize, std_strings: bool) -> usize {
    let mut i = from;
    let mut parens: usize = 0;
    let mut words = Words::default();
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => i = line_end(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => i = block_comment_end(b, i),
            b'\'' => i = quoted_end(b, i, b'\'', !std_strings),
            b'"' => i = quoted_end(b, i, b'"', false),
            b'$' => match dollar_tag(b, i) {
                Some(tag) => {
                    let body = i + tag.len();
                    i = b[body..]
                        .windows(tag.len())
                        .position(|w| w == tag)
                        .map_or(b.len(), |p| body + p + tag.len());
                }
                None => i += 1,
            },
            b'(' => {
                parens += 1;
                i += 1;
            }
            b')' => {
                parens = parens.saturating_sub(1);
                i += 1;
            }
            b';' if parens == 0 && words.begin_depth == 0 => return i + 1,
            c if is_ident_start(c) => {
                let start = i;
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
                let word = &b[start..i];
                let next = b.get(i).copied();
                if next == Some(b'\'') && word.eq_ignore_ascii_case(b"e") {
                    i = quoted_end(b, i, b'\'', true);
                } else if next == Some(b'&')
                    && word.eq_ignore_ascii_case(b"u")
                    && matches!(b.get(i + 1), Some(b'\'') | Some(b'"'))
                {
                    i = quoted_end(b, i + 1, b[i + 1], false);
                } else if parens == 0 {
                    // Words are ASCII where they matter; others cannot be keywords.
                    if let Ok(w) = std::str::from_utf8(word) {
                        words.see(w);
                    }
                }
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && is_ident_char(b[i]) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Piece::*;

    #[test]
    fn statements_end_at_semicolons_outside_quotes() {
        let s = "select 'a;b', \"c;d\", $$e;f$$, $x$ $$; $x$, E'\\';', U&'g;', B'01'; select 2;";
        assert_eq!(
            statements(s),
            vec![
                "select 'a;b', \"c;d\", $$e;f$$, $x$ $$; $x$, E'\\';', U&'g;', B'01';",
                "select 2;"
            ]
        );
    }

    #[test]
    fn comments_and_meta_commands_only_between_statements() {
        let s = "\\restrict abc\n--\n-- Name: t; Type: TABLE\n--\nCREATE TABLE t (\n-- Name: x; inside\n a int /* ; */\n);\n/* outer /* nested ; */ still */\n\\unrestrict abc\n";
        assert_eq!(
            pieces(s).collect::<Vec<_>>(),
            vec![
                Meta("\\restrict abc"),
                Comment("--"),
                Comment("-- Name: t; Type: TABLE"),
                Comment("--"),
                Statement("CREATE TABLE t (\n-- Name: x; inside\n a int /* ; */\n);"),
                Comment("/* outer /* nested ; */ still */"),
                Meta("\\unrestrict abc"),
            ]
        );
    }

    #[test]
    fn bodies_keep_every_byte() {
        // A line starting with a backslash, CR LF, header look-alikes and a nested dollar
        // quote, all inside one function body.
        let body = "CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $fn$\r\nbegin\r\n\\d+';\n--\n-- Name: x; Type: TABLE; Schema: public; Owner: me\n--\nreturn $q$ ; $$ $q$;\r\nend $fn$;";
        let comment = "COMMENT ON TABLE t IS 'one\r\n\\\\server\\share\r\n\\d two';";
        let s = format!("{body}\n\n{comment}\n");
        assert_eq!(
            pieces(&s).collect::<Vec<_>>(),
            vec![Statement(body), Statement(comment)]
        );
    }

    #[test]
    fn sql_standard_bodies_hold_semicolons() {
        let f = "CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END; SELECT 3; END;";
        let p = "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;";
        let s = format!("{f}\n{p}\nBEGIN;\nselect 1;\nEND;");
        assert_eq!(statements(&s), vec![f, p, "BEGIN;", "select 1;", "END;"]);
    }

    #[test]
    fn rules_with_several_actions_are_one_statement() {
        let r = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));";
        assert_eq!(statements(&format!("{r} select 1;")), vec![r, "select 1;"]);
    }

    #[test]
    fn escape_strings_follow_standard_conforming_strings() {
        let s = "SET standard_conforming_strings = off;\nselect 'a\\';b';\nSET standard_conforming_strings = on;\nselect 'c\\'; select 2;";
        assert_eq!(
            statements(s),
            vec![
                "SET standard_conforming_strings = off;",
                "select 'a\\';b';",
                "SET standard_conforming_strings = on;",
                "select 'c\\';",
                "select 2;"
            ]
        );
    }

    #[test]
    fn dollar_signs_that_open_nothing() {
        let s = "select $1, a$b$c, x $ y; select $tag$ ; $tag$;";
        assert_eq!(
            statements(s),
            vec!["select $1, a$b$c, x $ y;", "select $tag$ ; $tag$;"]
        );
        // Unterminated quotes run to the end: nothing after them is a separate statement.
        assert_eq!(
            statements("select 'abc; select 2;"),
            vec!["select 'abc; select 2;"]
        );
        assert_eq!(statements("select 1"), vec!["select 1"]);
    }

    #[test]
    fn non_ascii_text() {
        let s = "COMMENT ON TABLE \"tâble\" IS 'café; ünïcode 日本語';\nselect 'x';";
        assert_eq!(
            statements(s),
            vec![
                "COMMENT ON TABLE \"tâble\" IS 'café; ünïcode 日本語';",
                "select 'x';"
            ]
        );
    }

    #[test]
    fn set_names() {
        assert_eq!(
            set_name("SET transaction_timeout = 0;"),
            Some("transaction_timeout".into())
        );
        assert_eq!(
            set_name("set  Search_Path TO x;"),
            Some("search_path".into())
        );
        assert_eq!(set_name("SET SESSION AUTHORIZATION x;"), None);
        assert_eq!(
            set_name("SELECT pg_catalog.set_config('a', 'b', false);"),
            None
        );
    }
}
