//! Reads the table of contents of a pg_dump custom-format archive (`pg_dump -Fc`).
//!
//! Each TOC entry holds the statement text pg_dump wrote for one object (its `defn`), with
//! the catalog OID, kind, schema, tablespace and owner of that object. neoncopy reads it to
//! know which entries to restore when (instead of parsing `pg_restore --list` lines) and to
//! run the exact text pg_dump wrote for the indexes and constraints it builds itself.
//!
//! The layout (archive versions 1.12 to 1.16, written by pg_dump 9.0 to 18): the magic
//! `PGDMP`; version bytes; the sizes of an integer and of a file offset; the format; the
//! compression; the creation time; the database name and the server and pg_dump versions;
//! then the entry count and the entries. An integer is a sign byte and `intSize` bytes, least
//! significant first; a string is an integer length (-1 for NULL) and that many bytes. Data
//! blocks follow the TOC and are not read here.

use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Where an entry belongs in a restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Comments, ACLs and the like: they go with the entries around them.
    None,
    PreData,
    Data,
    PostData,
}

/// One entry of the table of contents.
#[derive(Clone, Debug)]
pub struct Entry {
    pub dump_id: u32,
    /// The catalog the object lives in (`pg_class`, `pg_constraint`, ...) and its OID; 0 for
    /// entries that stand for no single catalog row.
    pub catalog_oid: u32,
    pub oid: u32,
    /// The object's name as pg_dump describes it (a constraint's is `table name`).
    pub tag: String,
    /// The entry kind: `TABLE`, `INDEX`, `CONSTRAINT`, `FK CONSTRAINT`, `COMMENT`, ...
    /// Kinds, schemas, owners and tablespaces repeat from entry to entry: each distinct text
    /// is held once (a hundred thousand tables make over half a million entries).
    pub desc: Arc<str>,
    /// As the archive says (`None` for comments and ACLs).
    pub section: Section,
    /// As pg_restore places it: an entry without a section of its own belongs to the section
    /// of the entry before it.
    pub placed: Section,
    /// The statement text, when the reader was asked to keep it for this entry.
    pub defn: Option<String>,
    pub namespace: Arc<str>,
    /// None: the object has no tablespace; "" the database's default.
    pub tablespace: Option<Arc<str>>,
    pub owner: Arc<str>,
    pub dependencies: Box<[u32]>,
}

impl Entry {
    /// A one-line description for restore lists and messages: no line breaks, whatever the
    /// object's name holds.
    pub fn describe(&self) -> String {
        let schema = if self.namespace.is_empty() {
            "-"
        } else {
            &self.namespace
        };
        let owner = if self.owner.is_empty() {
            "-"
        } else {
            &self.owner
        };
        one_line(&format!(
            "{} {} {} {} {} {}",
            self.catalog_oid, self.oid, self.desc, schema, self.tag, owner
        ))
    }
}

/// Replaces line breaks so that a name cannot start a line of its own in a restore list (where
/// a line starting with digits selects an entry).
pub fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// The header and entries of an archive.
#[derive(Clone, Debug)]
pub struct Archive {
    pub version: (u8, u8, u8),
    pub database: String,
    /// The server version pg_dump read from, as the server reported it.
    pub server_version: String,
    pub pg_dump_version: String,
    pub entries: Vec<Entry>,
}

impl Archive {
    /// Reads the archive at `path`, keeping the statement text of the entries `keep_defn`
    /// selects (by kind) and only their metadata for the rest. The file is read as a stream:
    /// only the entries are held, never the archive itself.
    pub fn read(path: &Path, keep_defn: &dyn Fn(&str) -> bool) -> Result<Archive> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("read the archive {}", path.display()))?;
        Archive::parse(std::io::BufReader::with_capacity(64 << 10, file), keep_defn)
            .with_context(|| format!("read the table of contents of {}", path.display()))
    }

    pub fn parse(input: impl Read, keep_defn: &dyn Fn(&str) -> bool) -> Result<Archive> {
        let mut r = Reader {
            input,
            scratch: Vec::new(),
            int_size: 4,
            off_size: 8,
            texts: HashSet::new(),
        };
        if r.take(5)? != b"PGDMP" {
            bail!("not a pg_dump custom-format archive (no PGDMP header)");
        }
        let (major, minor) = (r.byte()?, r.byte()?);
        let rev = r.byte()?;
        let version = (major, minor, rev);
        if major != 1 || !(12..=16).contains(&minor) {
            bail!(
                "archive version {major}.{minor} is not one neoncopy reads (1.12 to 1.16: pg_dump 9.0 to 18)"
            );
        }
        r.int_size = r.byte()? as usize;
        r.off_size = r.byte()? as usize;
        if !(1..=8).contains(&r.int_size) || !(1..=16).contains(&r.off_size) {
            bail!("archive header has unusable integer sizes");
        }
        let format = r.byte()?;
        if format != 1 {
            bail!("archive format {format} is not the custom format (pg_dump -Fc)");
        }
        if minor >= 15 {
            r.byte()?; // compression algorithm
        } else {
            r.int()?; // compression level
        }
        for _ in 0..7 {
            r.int()?; // creation time
        }
        let database = r.string()?.unwrap_or_default();
        let server_version = r.string()?.unwrap_or_default();
        let pg_dump_version = r.string()?.unwrap_or_default();
        let count = r.int()?;
        if count < 0 {
            bail!("archive holds a negative number of entries");
        }
        // Not trusted for the capacity: a damaged count must fail as a short file does.
        let mut entries = Vec::with_capacity((count as usize).min(1 << 20));
        let mut placed = Section::PreData;
        for _ in 0..count {
            let entry = read_entry(&mut r, minor, &mut placed, keep_defn)
                .with_context(|| format!("entry {} of the archive", entries.len() + 1))?;
            entries.push(entry);
        }
        entries.shrink_to_fit();
        Ok(Archive {
            version,
            database,
            server_version,
            pg_dump_version,
            entries,
        })
    }
}

fn read_entry<R: Read>(
    r: &mut Reader<R>,
    minor: u8,
    placed: &mut Section,
    keep_defn: &dyn Fn(&str) -> bool,
) -> Result<Entry> {
    let dump_id = r.int()?;
    if dump_id <= 0 {
        bail!("entry id {dump_id} out of range");
    }
    r.int()?; // had a data dumper
    let catalog_oid = r.oid()?;
    let oid = r.oid()?;
    let tag = r.string()?.unwrap_or_default();
    let desc = r.shared()?.unwrap_or_else(|| Arc::from(""));
    let section = match r.int()? {
        1 => Section::None,
        2 => Section::PreData,
        3 => Section::Data,
        4 => Section::PostData,
        s => bail!("entry {dump_id} has unknown section {s}"),
    };
    if section != Section::None {
        *placed = section;
    }
    let defn = if keep_defn(&desc) {
        r.string()?
    } else {
        r.skip_string()?;
        None
    };
    r.skip_string()?; // DROP statement
    r.skip_string()?; // COPY statement
    let namespace = r.shared()?.unwrap_or_else(|| Arc::from(""));
    let tablespace = r.shared()?;
    if minor >= 14 {
        r.skip_string()?; // table access method
    }
    if minor >= 16 {
        r.int()?; // relkind
    }
    let owner = r.shared()?.unwrap_or_else(|| Arc::from(""));
    r.skip_string()?; // "false": WITH OIDS
    let mut dependencies = Vec::new();
    while let Some(dep) = r.raw_string()? {
        let dep = std::str::from_utf8(dep).unwrap_or("");
        dependencies.push(
            dep.trim()
                .parse()
                .with_context(|| format!("entry {dump_id} has a bad dependency {dep:?}"))?,
        );
    }
    r.offset()?; // where the entry's data is, if it has any
    Ok(Entry {
        dump_id: dump_id as u32,
        catalog_oid,
        oid,
        tag,
        desc,
        section,
        placed: *placed,
        defn,
        namespace,
        tablespace,
        owner,
        dependencies: dependencies.into_boxed_slice(),
    })
}

struct Reader<R> {
    input: R,
    /// The bytes of the field being read.
    scratch: Vec<u8>,
    int_size: usize,
    off_size: usize,
    /// The distinct texts of the fields held once (`shared`).
    texts: HashSet<Arc<str>>,
}

impl<R: Read> Reader<R> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        self.scratch.clear();
        let got = (&mut self.input)
            .take(n as u64)
            .read_to_end(&mut self.scratch)
            .context("read the archive")?;
        if got < n {
            bail!("the archive ends early (truncated file?)");
        }
        Ok(&self.scratch)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn int(&mut self) -> Result<i64> {
        let negative = self.byte()? != 0;
        let mut v: i64 = 0;
        for (i, b) in self.take(self.int_size)?.iter().enumerate() {
            v |= (*b as i64) << (8 * i);
        }
        Ok(if negative { -v } else { v })
    }

    fn raw_string(&mut self) -> Result<Option<&[u8]>> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?))
    }

    fn string(&mut self) -> Result<Option<String>> {
        match self.raw_string()? {
            None => Ok(None),
            Some(b) => Ok(Some(
                std::str::from_utf8(b)
                    .context("the archive holds text that is not valid UTF-8")?
                    .to_string(),
            )),
        }
    }

    /// A text that many entries repeat, held once.
    fn shared(&mut self) -> Result<Option<Arc<str>>> {
        if self.raw_string()?.is_none() {
            return Ok(None);
        }
        let s = std::str::from_utf8(&self.scratch)
            .context("the archive holds text that is not valid UTF-8")?;
        if let Some(t) = self.texts.get(s) {
            return Ok(Some(t.clone()));
        }
        let t: Arc<str> = Arc::from(s);
        self.texts.insert(t.clone());
        Ok(Some(t))
    }

    fn skip_string(&mut self) -> Result<()> {
        let len = self.int()?;
        if len > 0 {
            let skipped = std::io::copy(
                &mut (&mut self.input).take(len as u64),
                &mut std::io::sink(),
            )
            .context("read the archive")?;
            if skipped < len as u64 {
                bail!("the archive ends early (truncated file?)");
            }
        }
        Ok(())
    }

    fn oid(&mut self) -> Result<u32> {
        let s = self.raw_string()?.unwrap_or_default();
        let s = std::str::from_utf8(s).unwrap_or("");
        s.trim()
            .parse()
            .with_context(|| format!("bad OID {s:?} in the archive"))
    }

    fn offset(&mut self) -> Result<()> {
        self.byte()?; // state of the offset
        let n = self.off_size;
        self.take(n)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes archives the way pg_dump does, to test the reader on every version it accepts.
    struct Writer {
        out: Vec<u8>,
    }

    impl Writer {
        fn int(&mut self, v: i64) {
            self.out.push((v < 0) as u8);
            self.out
                .extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
        }
        fn string(&mut self, s: Option<&str>) {
            match s {
                None => self.int(-1),
                Some(s) => {
                    self.int(s.len() as i64);
                    self.out.extend_from_slice(s.as_bytes());
                }
            }
        }
    }

    /// id, catalog, oid, desc, section, tag, defn, dependencies
    type TestEntry<'a> = (
        i64,
        &'a str,
        &'a str,
        &'a str,
        i64,
        &'a str,
        &'a str,
        &'a [&'a str],
    );

    fn archive(minor: u8, entries: &[TestEntry<'_>]) -> Vec<u8> {
        let mut w = Writer {
            out: b"PGDMP".to_vec(),
        };
        w.out.extend_from_slice(&[1, minor, 0, 4, 8, 1]);
        if minor >= 15 {
            w.out.push(0);
        } else {
            w.int(0);
        }
        for v in [1, 2, 3, 4, 5, 126, 0] {
            w.int(v);
        }
        w.string(Some("app"));
        w.string(Some("15.18"));
        w.string(Some("15.18"));
        w.int(entries.len() as i64);
        for (id, catalog, oid, desc, section, tag, defn, deps) in entries {
            w.int(*id);
            w.int(0);
            w.string(Some(catalog));
            w.string(Some(oid));
            w.string(Some(tag));
            w.string(Some(desc));
            w.int(*section);
            w.string(Some(defn));
            w.string(Some(""));
            w.string(None);
            w.string(Some("public"));
            w.string(if *desc == "INDEX" { Some("fast") } else { None });
            if minor >= 14 {
                w.string(None);
            }
            if minor >= 16 {
                w.int(0);
            }
            w.string(Some("alice"));
            w.string(Some("false"));
            for d in *deps {
                w.string(Some(d));
            }
            w.string(None);
            w.out.push(3);
            w.out.extend_from_slice(&[0; 8]);
        }
        w.out
    }

    #[test]
    fn reads_entries_of_every_version() {
        for minor in [12, 13, 14, 15, 16] {
            let bytes = archive(
                minor,
                &[
                    (
                        3,
                        "1259",
                        "16385",
                        "TABLE",
                        2,
                        "t",
                        "CREATE TABLE public.t ();\n",
                        &[],
                    ),
                    (
                        9,
                        "0",
                        "0",
                        "COMMENT",
                        1,
                        "TABLE t",
                        "COMMENT ON TABLE public.t IS 'a\r\nb';\n",
                        &["3"],
                    ),
                    (
                        7,
                        "1259",
                        "16390",
                        "INDEX",
                        4,
                        "t_idx",
                        "CREATE INDEX t_idx ON public.t USING btree (a);\n",
                        &["3", "9"],
                    ),
                    (8, "0", "0", "COMMENT", 1, "INDEX t_idx", "", &[]),
                ],
            );
            let a = Archive::parse(&bytes[..], &|desc| desc == "INDEX").unwrap();
            assert_eq!(a.version, (1, minor, 0));
            assert_eq!(a.database, "app");
            assert_eq!(a.entries.len(), 4);
            let e = &a.entries[2];
            assert_eq!((e.dump_id, e.catalog_oid, e.oid), (7, 1259, 16390));
            assert_eq!(
                e.defn.as_deref(),
                Some("CREATE INDEX t_idx ON public.t USING btree (a);\n")
            );
            assert_eq!(e.tablespace.as_deref(), Some("fast"));
            assert_eq!(&*e.dependencies, &[3, 9]);
            assert_eq!(&*e.owner, "alice");
            // Kept only where asked; comments take the section of the entry before them.
            assert_eq!(a.entries[0].defn, None);
            assert_eq!(a.entries[1].placed, Section::PreData);
            assert_eq!(a.entries[3].section, Section::None);
            assert_eq!(a.entries[3].placed, Section::PostData);
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let good = archive(
            14,
            &[(
                1,
                "0",
                "0",
                "ENCODING",
                2,
                "ENCODING",
                "SET client_encoding = 'UTF8';\n",
                &[],
            )],
        );
        assert!(Archive::parse(&good[..], &|_| true).is_ok());
        for n in [0, 5, 20, good.len() - 1] {
            let err = format!("{:#}", Archive::parse(&good[..n], &|_| true).unwrap_err());
            assert!(
                err.contains("PGDMP") || err.contains("ends early"),
                "{n}: {err}"
            );
        }
        let mut newer = good.clone();
        newer[6] = 17;
        let err = Archive::parse(&newer[..], &|_| true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1.17"), "{err}");
        // Text in another encoding than UTF-8 (pg_dump is always asked for UTF-8).
        let mut bad = archive(14, &[(1, "0", "0", "COMMENT", 1, "x", "cafe", &[])]);
        let at = bad.windows(4).position(|w| w == b"cafe").unwrap();
        bad[at + 3] = 0xe9;
        let err = format!("{:#}", Archive::parse(&bad[..], &|_| true).unwrap_err());
        assert!(err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn descriptions_stay_on_one_line() {
        let e = Entry {
            dump_id: 1,
            catalog_oid: 1259,
            oid: 5,
            tag: "odd\n42; name".into(),
            desc: "TABLE".into(),
            section: Section::PreData,
            placed: Section::PreData,
            defn: None,
            namespace: "".into(),
            tablespace: None,
            owner: "".into(),
            dependencies: Box::new([]),
        };
        assert_eq!(e.describe(), "1259 5 TABLE - odd 42; name -");
    }
}
