//! Schema steps: pg_dump of pre-data and post-data into the work directory; restore lists
//! written from the archive's own table of contents; pre-data restored before the data and the
//! rest of post-data after it.
//!
//! pg_restore writes the SQL (it is the reference for what a restore runs: owners, privileges,
//! comments, large objects); neoncopy splits its scripts with a lexer that knows PostgreSQL's
//! quoting (`pg::script`) and sends them in batches on its own connections. The statements of
//! the indexes and constraints neoncopy builds itself, and of big foreign keys, are the
//! archive's own entries, run as they are.

use super::Ctx;
use crate::catalog::{Index, PG_CLASS, PG_CONSTRAINT};
use crate::filters::Selection;
use crate::pg::archive::{Archive, Entry, Section};
use crate::pg::tools::PgTools;
use crate::pg::{script, tools, DbResultExt, Endpoint};
use crate::workdir::WorkDir;
use anyhow::{Context, Result};
use std::collections::{BTreeSet, HashMap, HashSet};
use tracing::{info, warn};

const ARCHIVE: &str = "schema.dump";
const PRE_DATA_LIST: &str = "pre-data.list";
const POST_DATA_LIST: &str = "post-data.list";
const DROP_LIST: &str = "drop.list";
const PRE_DATA_SQL: &str = "pre-data.sql";
const SESSION_LIST: &str = "session.list";
const SESSION_SQL: &str = "session.sql";
const REHEARSAL_LIST: &str = "rehearsal.list";
const REHEARSAL_DROP_LIST: &str = "rehearsal-drop.list";
const REHEARSAL_SQL: &str = "rehearsal.sql";

/// Entry kinds whose statement text neoncopy runs itself.
const BUILT_KINDS: &[&str] = &["INDEX", "CONSTRAINT"];

/// What of the schema pg_dump is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpScope {
    /// `--schema-only`: the same entries as the two sections when the source has no
    /// materialized view and no large object to copy, without reading what is thrown away
    /// (pg_dump with `--section` still reads every sequence's value, a query per sequence
    /// before pg_dump 18, to leave it out with the data section).
    SchemaOnly,
    /// `--section=pre-data --section=post-data`: with the REFRESH of each materialized view
    /// (table data, placed in post-data) and the metadata of large objects (pre-data before
    /// pg_dump 17).
    Sections,
}

impl DumpScope {
    /// The scope that dumps everything neoncopy restores from the archive by the pg_dump of
    /// `pg_dump_major`, read in the session's snapshot. Large objects need the sections only
    /// when they are copied and pg_dump is older than 17 (from 17 on their metadata is in the
    /// data section, and the large objects step creates them).
    pub async fn of_source(
        client: &tokio_postgres::Client,
        with_large_objects: bool,
        pg_dump_major: u32,
    ) -> Result<DumpScope> {
        let metadata_in_schema = with_large_objects && pg_dump_major < 17;
        let sections: bool = client
            .query_one(crate::pg::sql::NEEDS_SECTIONS, &[&metadata_in_schema])
            .await
            .db()
            .context("look for materialized views and large objects on the source")?
            .get(0);
        Ok(if sections {
            DumpScope::Sections
        } else {
            DumpScope::SchemaOnly
        })
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            DumpScope::SchemaOnly => &["--schema-only"],
            DumpScope::Sections => &["--section=pre-data", "--section=post-data"],
        }
    }
}

/// `pg_dump -Fc` of the schema (`scope`) of what the filters select (`selection_args`:
/// `Selection::pg_dump_args`), in `snapshot` when there is one, into the archive of `dir`.
pub async fn pg_dump(
    dir: &WorkDir,
    tools: &PgTools,
    source: &Endpoint,
    (scope, selection_args): (DumpScope, &[String]),
    snapshot: Option<&str>,
    skip_large_objects: bool,
) -> Result<()> {
    let mut args = vec![
        "--format=custom".to_string(),
        format!("--file={}", dir.file(ARCHIVE).display()),
    ];
    args.extend(scope.args().iter().map(|a| a.to_string()));
    if scope == DumpScope::SchemaOnly {
        info!("pg_dump --schema-only: no materialized view or large object to dump");
    }
    args.extend([
        "--no-subscriptions".into(),
        // Whatever the source's encoding, the archive's text is UTF-8: it is read as such,
        // and sent to the target on UTF-8 connections.
        "--encoding=UTF8".into(),
    ]);
    if let Some(id) = snapshot {
        args.push(format!("--snapshot={id}"));
    }
    if skip_large_objects {
        args.push("--no-blobs".into());
    }
    args.extend(selection_args.iter().cloned());
    args.push(format!(
        "--dbname={}",
        source.params.to_libpq_for_client(tools.major)?
    ));
    tools::run(&tools.pg_dump, &args, &source.params, "pg_dump").await?;
    Ok(())
}

/// The restore lists of a new archive: which entries pre-data and post-data restore, which
/// the drops name, what neoncopy builds itself and what the filters leave out.
pub fn write_restore_lists(ctx: &Ctx) -> Result<()> {
    let toc = ctx.restorer().archive(&|desc| desc == "SCHEMA")?;
    // pg_restore decides the section of a comment by the entries around it, so a comment on a
    // constraint neoncopy builds would move into pre-data once that constraint is left out.
    // The lists therefore name each section's entries explicitly, as the archive places them.
    let mut left = left_out(ctx);
    left.leave_out_public_creation(&toc.entries);
    let dir = &ctx.workdir;
    let pre_data = |e: &Entry| e.placed != Section::PostData;
    let skipped_pre = write_restore_list(dir, PRE_DATA_LIST, &toc.entries, &pre_data, &left)?;
    let post_data = |e: &Entry| e.placed == Section::PostData;
    let skipped_post = write_restore_list(dir, POST_DATA_LIST, &toc.entries, &post_data, &left)?;
    info!(
        "restore lists: {} of {} entries left to neoncopy's own steps or skipped",
        skipped_pre + skipped_post,
        toc.entries.len()
    );
    let extensions_only = LeftOut {
        extensions: left.extensions.clone(),
        ..LeftOut::default()
    };
    write_restore_list(dir, DROP_LIST, &toc.entries, &|_| true, &extensions_only)?;
    std::fs::write(ctx.workdir.file(SESSION_LIST), ";\n; no entries\n;\n")
        .context("write session list")?;
    Ok(())
}

/// pg_restore over the archive of a work directory, with the clone's restore flags.
pub struct Restorer<'a> {
    pub dir: &'a WorkDir,
    pub tools: &'a PgTools,
    pub target: &'a Endpoint,
    pub no_owner: bool,
    pub no_acl: bool,
    pub no_comments: bool,
}

impl Restorer<'_> {
    /// The archive's table of contents, with the statement text of the kinds `keep_defn`
    /// selects.
    pub fn archive(&self, keep_defn: &dyn Fn(&str) -> bool) -> Result<Archive> {
        Archive::read(&self.dir.file(ARCHIVE), keep_defn)
    }

    fn args(&self, list: &str) -> Vec<String> {
        let mut args = vec![format!("--use-list={}", self.dir.file(list).display())];
        if self.no_owner {
            args.push("--no-owner".into());
        }
        if self.no_acl {
            args.push("--no-acl".into());
        }
        if self.no_comments {
            args.push("--no-comments".into());
        }
        args
    }

    /// pg_restore's script for the entries of `list`, split into its session settings and
    /// its entries.
    async fn script(&self, list: &str, sql_file: &str, what: &str) -> Result<Script> {
        let sql_path = self.dir.file(sql_file);
        let mut args = self.args(list);
        args.push(format!("--file={}", sql_path.display()));
        args.push(self.dir.file(ARCHIVE).display().to_string());
        tools::run(
            &self.tools.pg_restore,
            &args,
            &self.target.params,
            &format!("pg_restore ({what} script)"),
        )
        .await?;
        Ok(split_script(read_script(&sql_path, what)?))
    }

    /// The session settings and DROP ... IF EXISTS statements of `pg_restore --clean` for the
    /// entries of `list`.
    async fn drop_script(&self, list: &str, script: &str) -> Result<Vec<String>> {
        let sql_path = self.dir.file(script);
        let args = vec![
            "--clean".to_string(),
            "--if-exists".into(),
            format!("--use-list={}", self.dir.file(list).display()),
            format!("--file={}", sql_path.display()),
            self.dir.file(ARCHIVE).display().to_string(),
        ];
        tools::run(
            &self.tools.pg_restore,
            &args,
            &self.target.params,
            "pg_restore --clean (script)",
        )
        .await?;
        let text = read_script(&sql_path, "drop")?;
        // The DROP statements come before the first entry's header, with the session settings.
        Ok(split_script(text).session)
    }
}

/// What the archive says for the indexes and constraints neoncopy builds, and the session
/// settings pg_restore would start with (adapted to the target).
pub struct ArchiveDdl {
    /// Statements that start every session running archive entries.
    pub session: String,
    built: HashMap<(u32, u32), BuiltDdl>,
}

/// One index's or constraint's archive entry: its statements as pg_dump wrote them, and the
/// tablespace pg_restore would select first.
#[derive(Clone, Debug)]
pub struct BuiltDdl {
    pub statements: Vec<String>,
    pub tablespace: String,
}

impl BuiltDdl {
    /// `SET default_tablespace` as pg_restore writes it before the entry.
    pub fn tablespace_setting(&self) -> String {
        if self.tablespace.is_empty() {
            "set default_tablespace = ''".to_string()
        } else {
            format!(
                "set default_tablespace = {}",
                crate::pg::sql::ident(&self.tablespace)
            )
        }
    }

    /// The whole entry, its tablespace first.
    pub fn whole(&self) -> String {
        let mut s = self.tablespace_setting();
        s.push_str(";\n");
        for stmt in &self.statements {
            s.push_str(stmt);
            s.push('\n');
        }
        s
    }
}

impl ArchiveDdl {
    pub fn get(&self, index: &Index) -> Option<&BuiltDdl> {
        self.built.get(&index.archive_oid())
    }
}

/// Reads the archive's entries for the catalog's indexes, and the session settings.
pub async fn load_ddl(ctx: &Ctx) -> Result<ArchiveDdl> {
    let toc = ctx
        .restorer()
        .archive(&|desc| BUILT_KINDS.contains(&desc))?;
    let wanted: HashSet<(u32, u32)> = ctx.catalog.indexes.iter().map(Index::archive_oid).collect();
    let mut built = HashMap::new();
    for e in toc.entries {
        if !BUILT_KINDS.contains(&&*e.desc) || !wanted.contains(&(e.catalog_oid, e.oid)) {
            continue;
        }
        let statements = script::statements(e.defn.as_deref().unwrap_or_default())
            .into_iter()
            .map(str::to_string)
            .collect();
        built.insert(
            (e.catalog_oid, e.oid),
            BuiltDdl {
                statements,
                tablespace: e.tablespace.as_deref().unwrap_or_default().to_string(),
            },
        );
    }
    for index in &ctx.catalog.indexes {
        if !built.contains_key(&index.archive_oid()) {
            warn!(
                "{} is not in pg_dump's archive: it is not built on the target either",
                index.display()
            );
        }
    }
    let session = session_prologue(ctx).await?;
    Ok(ArchiveDdl { session, built })
}

/// The session settings a pg_restore script starts with, adapted to the target.
async fn session_prologue(ctx: &Ctx) -> Result<String> {
    let script = ctx
        .restorer()
        .script(SESSION_LIST, SESSION_SQL, "session settings")
        .await?;
    let client = ctx.target.connect().await?;
    adapt_session(&client, &script.session).await
}

/// Archive entries not to restore.
#[derive(Debug, Default, Clone)]
pub struct LeftOut {
    /// By (catalog table oid, object oid): what neoncopy builds itself, and the indexes and
    /// constraints the filters leave out.
    objects: HashSet<(u32, u32)>,
    /// Extensions the filters leave out (with their comments).
    extensions: BTreeSet<String>,
    /// (schema, name) of partition indexes the filters leave out: their `INDEX ATTACH`
    /// entries carry no oid.
    attachments: HashSet<(String, String)>,
    /// The publication `clone --follow` made on the source before pg_dump read it: its entries
    /// (and its tables', and its comment) are neoncopy's, not the user's.
    publication: Option<String>,
}

impl LeftOut {
    fn contains(&self, e: &Entry) -> bool {
        if self.objects.contains(&(e.catalog_oid, e.oid)) {
            return true;
        }
        if let Some(p) = &self.publication {
            // PUBLICATION: the name; PUBLICATION TABLE and PUBLICATION TABLES IN SCHEMA:
            // "name object"; its comment: "PUBLICATION name".
            let ours = match &*e.desc {
                "PUBLICATION" => e.tag == *p,
                d if d.starts_with("PUBLICATION ") => e.tag.split(' ').next() == Some(p),
                "COMMENT" => e.tag.strip_prefix("PUBLICATION ") == Some(p),
                _ => false,
            };
            if ours {
                return true;
            }
        }
        let extension = match &*e.desc {
            "EXTENSION" => Some(e.tag.as_str()),
            "COMMENT" => e.tag.strip_prefix("EXTENSION "),
            _ => None,
        };
        if let Some(name) = extension {
            let unquoted = unquote_ident(name);
            if self.extensions.contains(name) || self.extensions.contains(&unquoted) {
                return true;
            }
        }
        &*e.desc == "INDEX ATTACH"
            && self
                .attachments
                .contains(&(e.namespace.to_string(), e.tag.clone()))
    }
}

/// A name as pg_dump's fmtId writes it, without its quotes.
fn unquote_ident(name: &str) -> String {
    match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => name.to_string(),
    }
}

/// What neoncopy builds itself and what the filters leave out.
fn left_out(ctx: &Ctx) -> LeftOut {
    let mut left = LeftOut::of_run(ctx);
    left.objects
        .extend(ctx.catalog.indexes.iter().map(|i| i.archive_oid()));
    left
}

impl LeftOut {
    /// pg_dump --schema public writes `CREATE SCHEMA public`, which every target has already
    /// (without --schema it writes a comment instead): that entry is left out.
    pub fn leave_out_public_creation(&mut self, entries: &[Entry]) {
        for e in entries {
            let creates = e
                .defn
                .as_deref()
                .is_some_and(|d| d.trim_start().starts_with("CREATE SCHEMA"));
            if &*e.desc == "SCHEMA" && e.tag == "public" && creates {
                self.objects.insert((e.catalog_oid, e.oid));
            }
        }
    }

    /// What the filters leave out, and the publication of `clone --follow`.
    pub fn of_run(ctx: &Ctx) -> LeftOut {
        LeftOut {
            publication: ctx.publication.get().cloned(),
            ..LeftOut::by_filters(&ctx.selection)
        }
    }

    /// What the filters leave out.
    pub fn by_filters(sel: &Selection) -> LeftOut {
        let mut objects = HashSet::new();
        objects.extend(sel.excluded_indexes.keys().map(|oid| (PG_CLASS, *oid)));
        objects.extend(
            sel.excluded_constraints
                .iter()
                .map(|oid| (PG_CONSTRAINT, *oid)),
        );
        LeftOut {
            objects,
            extensions: sel.excluded_extensions.clone(),
            attachments: sel.excluded_indexes.values().cloned().collect(),
            publication: None,
        }
    }
}

/// A restore list for pg_restore --use-list, written to `out` as it is made: every entry of
/// the archive in its order, those `wanted` selects active unless `left` names them, the
/// others commented out. Returns how many wanted entries were left out.
fn restore_list_to(
    out: &mut impl std::io::Write,
    entries: &[Entry],
    wanted: &dyn Fn(&Entry) -> bool,
    left: &LeftOut,
) -> std::io::Result<usize> {
    out.write_all(b";\n; Written by neoncopy from the archive's table of contents\n;\n")?;
    let mut skipped = 0;
    for e in entries {
        let active = wanted(e) && !left.contains(e);
        if wanted(e) && !active {
            skipped += 1;
        }
        let comment = if active { "" } else { ";" };
        writeln!(out, "{comment}{}; {}", e.dump_id, e.describe())?;
    }
    Ok(skipped)
}

/// [`restore_list_to`] into the work directory's file `name` (a list of a schema of many
/// thousand tables runs to tens of megabytes: it is not held).
fn write_restore_list(
    dir: &WorkDir,
    name: &str,
    entries: &[Entry],
    wanted: &dyn Fn(&Entry) -> bool,
    left: &LeftOut,
) -> Result<usize> {
    let write = || -> std::io::Result<usize> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.file(name))?);
        let skipped = restore_list_to(&mut out, entries, wanted, left)?;
        std::io::Write::flush(&mut out)?;
        Ok(skipped)
    };
    write().with_context(|| format!("write the restore list {name}"))
}

/// [`restore_list_to`] into a string.
#[cfg(test)]
fn restore_list(
    entries: &[Entry],
    wanted: &dyn Fn(&Entry) -> bool,
    left: &LeftOut,
) -> (String, usize) {
    let mut out = Vec::new();
    let skipped = restore_list_to(&mut out, entries, wanted, left).expect("in memory");
    (String::from_utf8(out).expect("UTF-8"), skipped)
}

/// The dump ids of the active entries of a restore list written by `restore_list`.
#[cfg(test)]
fn active_ids(list: &str) -> HashSet<u32> {
    list.lines().filter_map(active_id).collect()
}

/// The dump id of a restore list's line, when it is active.
fn active_id(line: &str) -> Option<u32> {
    if line.starts_with(';') {
        return None;
    }
    line.split_once(';')
        .and_then(|(id, _)| id.trim().parse().ok())
}

/// The dump ids of the active entries of the work directory's restore list `name`, read line
/// by line.
fn active_ids_in(dir: &WorkDir, name: &str) -> Result<HashSet<u32>> {
    use std::io::BufRead;
    let read = || -> std::io::Result<HashSet<u32>> {
        let file = std::io::BufReader::new(std::fs::File::open(dir.file(name))?);
        let mut ids = HashSet::new();
        for line in file.lines() {
            ids.extend(active_id(&line?));
        }
        Ok(ids)
    };
    read().with_context(|| format!("read the restore list {name}"))
}

/// Whether an earlier run's archive and lists are all there.
pub fn archive_ready(workdir: &WorkDir) -> bool {
    [
        ARCHIVE,
        PRE_DATA_LIST,
        POST_DATA_LIST,
        DROP_LIST,
        SESSION_LIST,
    ]
    .iter()
    .all(|f| workdir.file(f).is_file())
}

/// Runs the whole schema, as pg_restore writes it (the indexes and constraints neoncopy
/// builds itself included, materialized view data left out), in one transaction on the target
/// and rolls it back: whatever the target refuses (an object only a superuser may create, a
/// missing tablespace, role or extension, what an older server cannot parse) is found before
/// anything is written, and named. Skipped when the schema would take more locks than the
/// target's lock table holds (one transaction locks every relation it creates).
///
/// With `jobs` above one, when pre-data is kept and nothing is dropped first, the entries are
/// run in lanes (see `lanes`): on up to `jobs` sessions side by side, each its own
/// transaction, committed only once every lane has run its part (pre-data kept, the rest
/// rolled back). When a lane fails before the commits, every lane is rolled back and the
/// rehearsal runs again in one transaction, which names what the target refuses.
pub async fn rehearse(
    r: &Restorer<'_>,
    left: &LeftOut,
    built: &HashSet<(u32, u32)>,
    drop_if_exists: bool,
    keep: Keep,
    jobs: usize,
) -> Result<Rehearsal> {
    let toc = r.archive(&|desc| desc == "SCHEMA")?;
    let mut left = left.clone();
    left.leave_out_public_creation(&toc.entries);
    let left = &left;
    let rehearsed = rehearsed_entries(&toc.entries, left, built);
    let client = r.target.connect().await?;
    if let Some(why) = over_lock_budget(&client, &toc.entries, &rehearsed).await? {
        return Ok(Rehearsal::Skipped(why));
    }
    // When pre-data is kept, it runs from its own list (the one the clone restores); the
    // rehearsal list then holds what comes after it.
    let wanted = |e: &Entry| {
        rehearsed.contains(&e.dump_id) && (keep == Keep::Nothing || e.placed == Section::PostData)
    };
    write_restore_list(r.dir, REHEARSAL_LIST, &toc.entries, &wanted, left)?;
    let extensions_only = LeftOut {
        extensions: left.extensions.clone(),
        ..LeftOut::default()
    };
    write_restore_list(
        r.dir,
        REHEARSAL_DROP_LIST,
        &toc.entries,
        &|_| true,
        &extensions_only,
    )?;
    let lanes = if keep == Keep::PreData && !drop_if_exists && jobs > 1 {
        let pre = active_ids_in(r.dir, PRE_DATA_LIST)?;
        let post = active_ids_in(r.dir, REHEARSAL_LIST)?;
        write_lane_lists(r.dir, &toc.entries, &[&pre, &post], jobs)?
    } else {
        0
    };
    // The table of contents is not held while the script is.
    std::mem::drop(toc);
    if lanes > 1 {
        match rehearse_in_lanes(r, lanes).await {
            Ok(n) => return Ok(Rehearsal::Done(n, lanes)),
            Err(LaneFailure::Committing(e)) => return Err(e),
            Err(LaneFailure::Running(e)) => info!(
                "the schema did not run on {lanes} sessions side by side ({e:#}): running it \
                 in one transaction"
            ),
        }
    }
    let script = r.script(REHEARSAL_LIST, REHEARSAL_SQL, "rehearsal").await?;
    let session = adapt_session(&client, &script.session).await?;
    client
        .batch_execute(&session)
        .await
        .db()
        .context("set up the rehearsal session")?;
    client
        .batch_execute("begin")
        .await
        .db()
        .context("begin the rehearsal")?;
    let result = rehearse_in_transaction(r, &client, &script, drop_if_exists, keep).await;
    if result.is_err() || keep == Keep::Nothing {
        let _ = client.batch_execute("rollback").await;
    }
    match result {
        Ok(n) => Ok(Rehearsal::Done(n, 1)),
        Err(e) if crate::pg::PgError::code_of(&e) == Some("53200") => {
            Ok(Rehearsal::Skipped(format!("{e:#}")))
        }
        Err(e) => Err(e),
    }
}

/// A file of lane `k` of `part` (0: pre-data, 1: what comes after it): its restore list
/// (`ext` "list") or its script ("sql").
fn lane_file(part: usize, k: usize, ext: &str) -> String {
    format!("lane-{k}-{}.{ext}", ["pre-data", "post-data"][part])
}

/// Splits the entries of `parts` (their dump ids, each part run after the other) into lanes
/// of linked entries and writes each lane's restore list of each part. Returns how many lanes
/// there are (one or none: nothing written).
fn write_lane_lists(
    dir: &WorkDir,
    entries: &[Entry],
    parts: &[&HashSet<u32>],
    jobs: usize,
) -> Result<usize> {
    let all: HashSet<u32> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let lanes = super::lanes::lanes(entries, &all, jobs);
    if lanes.len() < 2 {
        return Ok(lanes.len());
    }
    for (k, lane) in lanes.iter().enumerate() {
        for (i, part) in parts.iter().enumerate() {
            let wanted = |e: &Entry| {
                part.contains(&e.dump_id)
                    && (lane.contains(&e.dump_id)
                        || super::lanes::SESSION_KINDS.contains(&&*e.desc))
            };
            write_restore_list(
                dir,
                &lane_file(i, k, "list"),
                entries,
                &wanted,
                &LeftOut::default(),
            )?;
        }
    }
    Ok(lanes.len())
}

/// How running in lanes failed.
enum LaneFailure {
    /// Before any lane committed: every lane is rolled back.
    Running(anyhow::Error),
    /// While committing: some lanes may have committed.
    Committing(anyhow::Error),
}

/// The rehearsal in `n` lanes (their lists written by `write_lane_lists`): each lane runs its
/// pre-data, then the rest under a savepoint rolled back; once all have, each commits.
async fn rehearse_in_lanes(r: &Restorer<'_>, n: usize) -> Result<usize, LaneFailure> {
    let lane = |k: usize| async move {
        let pre = r
            .script(
                &lane_file(0, k, "list"),
                &lane_file(0, k, "sql"),
                "pre-data",
            )
            .await?;
        let rest = r
            .script(
                &lane_file(1, k, "list"),
                &lane_file(1, k, "sql"),
                "rehearsal",
            )
            .await?;
        let client = r.target.connect().await?;
        let session = adapt_session(&client, &pre.session).await?;
        let wait = super::lanes::LOCK_WAIT;
        client
            .batch_execute(&format!("{session}\nset lock_timeout = '{wait}';\nbegin"))
            .await
            .db()
            .context("begin the rehearsal")?;
        let n = pre_data_kept_rest_rolled_back(&client, &pre, &rest).await?;
        anyhow::Ok((client, n))
    };
    // A lane that fails drops the others, whose connections close: the server rolls them back.
    let lanes = futures::future::try_join_all((0..n).map(lane))
        .await
        .map_err(LaneFailure::Running)?;
    for (client, _) in &lanes {
        client
            .batch_execute("commit")
            .await
            .db()
            .context("commit pre-data on the target")
            .map_err(LaneFailure::Committing)?;
    }
    Ok(lanes.iter().map(|(_, n)| n).sum())
}

/// Why the rehearsal cannot run in one transaction, if it cannot: one transaction locks every
/// relation it creates, and all of them must fit in the target's lock table.
async fn over_lock_budget(
    client: &tokio_postgres::Client,
    entries: &[Entry],
    rehearsed: &HashSet<u32>,
) -> Result<Option<String>> {
    let relations = entries
        .iter()
        .filter(|e| rehearsed.contains(&e.dump_id))
        .filter(|e| {
            matches!(
                &*e.desc,
                "TABLE"
                    | "SEQUENCE"
                    | "INDEX"
                    | "CONSTRAINT"
                    | "VIEW"
                    | "MATERIALIZED VIEW"
                    | "FOREIGN TABLE"
                    | "TYPE"
                    | "DOMAIN"
                    | "FK CONSTRAINT"
                    | "TRIGGER"
            )
        })
        .count() as i64;
    let row = client
        .query_one(crate::pg::sql::LOCK_TABLE_SIZE, &[])
        .await
        .db()
        .context("read the target's lock table size")?;
    let locks: i64 = row.get(0);
    // Every object may take a lock on itself and one on what it is on; leave room for the
    // other sessions.
    Ok((relations * 2 > locks / 2).then(|| {
        format!(
            "its {relations} relations would need more locks in one transaction than the \
             target's lock table holds ({locks})"
        )
    }))
}

/// The rehearsal inside its transaction (begun by the caller): the drops first with
/// --drop-if-exists; then the whole script, or pre-data kept and the rest rolled back to a
/// savepoint before COMMIT. Returns how many entries ran.
async fn rehearse_in_transaction(
    r: &Restorer<'_>,
    client: &tokio_postgres::Client,
    script: &Script,
    drop_if_exists: bool,
    keep: Keep,
) -> Result<usize> {
    if drop_if_exists {
        let drops = r
            .drop_script(REHEARSAL_DROP_LIST, "rehearsal-drop.sql")
            .await?;
        client
            .batch_execute(&adapt_session(client, &drops).await?)
            .await
            .db()
            .context("rehearse dropping existing objects on the target")?;
    }
    if keep == Keep::Nothing {
        rehearse_entries(client, script).await?;
        return Ok(script.entries.len());
    }
    let pre = r.script(PRE_DATA_LIST, PRE_DATA_SQL, "pre-data").await?;
    let n = pre_data_kept_rest_rolled_back(client, &pre, script).await?;
    client
        .batch_execute("commit")
        .await
        .db()
        .context("commit pre-data on the target")?;
    Ok(n)
}

/// In the open transaction: `pre` (pre-data), then `rest` under a savepoint rolled back, so
/// that only pre-data is left for the caller to commit. Returns how many entries ran.
async fn pre_data_kept_rest_rolled_back(
    client: &tokio_postgres::Client,
    pre: &Script,
    rest: &Script,
) -> Result<usize> {
    rehearse_entries(client, pre).await?;
    client
        .batch_execute("savepoint neoncopy_post_data")
        .await
        .db()
        .context("rehearse post-data")?;
    rehearse_entries(client, rest).await?;
    client
        .batch_execute("rollback to savepoint neoncopy_post_data")
        .await
        .db()
        .context("rehearse post-data")?;
    Ok(pre.entries.len() + rest.entries.len())
}

/// The dump ids a rehearsal runs: every entry the clone restores or builds, but materialized
/// view data (which needs the rows) and the indexes and constraints neoncopy builds itself that
/// nothing else depends on (a foreign key needs its referenced key, an attachment its
/// index). Those are the bulk of a schema of many small tables, and what could make their
/// CREATE fail on an empty table (a missing extension, operator class or function) is
/// rehearsed with pre-data.
fn rehearsed_entries(
    entries: &[Entry],
    left: &LeftOut,
    built: &HashSet<(u32, u32)>,
) -> HashSet<u32> {
    let candidates: Vec<&Entry> = entries
        .iter()
        .filter(|e| &*e.desc != "MATERIALIZED VIEW DATA" && !left.contains(e))
        .collect();
    let is_built = |e: &Entry| built.contains(&(e.catalog_oid, e.oid));
    let mut kept: HashSet<u32> = candidates
        .iter()
        .filter(|e| !is_built(e))
        .map(|e| e.dump_id)
        .collect();
    let by_id: HashMap<u32, &Entry> = candidates.iter().map(|e| (e.dump_id, *e)).collect();
    let mut todo: Vec<u32> = kept.iter().copied().collect();
    while let Some(id) = todo.pop() {
        for dep in &by_id[&id].dependencies {
            if by_id.contains_key(dep) && kept.insert(*dep) {
                todo.push(*dep);
            }
        }
    }
    kept
}

/// What a rehearsal keeps of what it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// Everything is rolled back (`check`).
    Nothing,
    /// Pre-data is committed, the rest rolled back: the clone's prepare step, all or nothing.
    PreData,
}

/// How a rehearsal went, when the target refused nothing.
#[derive(Debug)]
pub enum Rehearsal {
    /// Every entry (this many) ran, in this many transactions side by side.
    Done(usize, usize),
    /// Not rehearsed, for this reason.
    Skipped(String),
}

/// What to do about an entry the target refuses, by the error's SQLSTATE.
fn way_out(code: Option<&str>) -> &'static str {
    match code {
        Some("42501") => {
            "clone with a target role that may create it (a superuser), or remove it from the source"
        }
        Some("42704") | Some("3F000") | Some("58P01") | Some("0A000") => {
            "create or install what it needs on the target first, or remove it from the source"
        }
        _ => "fix the cause on the target (or remove the object from the source) and run the clone again",
    }
}

/// Runs the rehearsal's entries in batches inside the open transaction, each batch under a
/// savepoint; a failed batch is run again entry by entry to name the entry at fault.
async fn rehearse_entries(client: &tokio_postgres::Client, script: &Script) -> Result<()> {
    const SAVEPOINT: &str = "neoncopy_rehearsal";
    for batch in batches(&script.entries) {
        let sql = script.batch_sql(batch);
        let run = |sql: String| async move {
            let wrapped = format!("savepoint {SAVEPOINT};\n{sql}\nrelease savepoint {SAVEPOINT};");
            let r = client.batch_execute(&wrapped).await.db();
            if r.is_err() {
                let _ = client
                    .batch_execute(&format!("rollback to savepoint {SAVEPOINT}"))
                    .await;
            }
            r
        };
        let Err(e) = run(sql).await else { continue };
        if crate::pg::retry::is_transient(&e) || crate::pg::PgError::code_of(&e) == Some("53200") {
            return Err(e.context("rehearse the schema on the target"));
        }
        for entry in batch {
            if let Err(e) = run(script.sql(entry).to_string()).await {
                let code = crate::pg::PgError::code_of(&e).map(str::to_string);
                return Err(crate::error::Classified::refused(
                    format!("the target refuses {}: {e:#}", entry.name),
                    way_out(code.as_deref()),
                )
                .into());
            }
        }
    }
    Ok(())
}

/// Creates schemas, types, functions, tables... (pre-data) on the target, after finding what
/// the target refuses of the whole schema: pre-data runs in one transaction, then the rest
/// of the schema under a savepoint rolled back, then the commit; a refusal leaves the target
/// as it was. When that many objects would not fit the target's lock table in one
/// transaction, or when this run resumes one that wrote already, pre-data runs in batches
/// without a rehearsal. `clean` first drops what an earlier, interrupted attempt created.
pub async fn prepare_rehearsed(
    ctx: &Ctx,
    left: &LeftOut,
    built: &HashSet<(u32, u32)>,
    resuming: bool,
    clean: bool,
) -> Result<()> {
    if !resuming {
        let drop_first = ctx.cfg.drop_if_exists || clean;
        let restorer = ctx.restorer();
        let rehearsal = rehearse(
            &restorer,
            left,
            built,
            drop_first,
            Keep::PreData,
            ctx.cfg.restore_jobs,
        );
        match rehearsal.await? {
            Rehearsal::Done(n, lanes) => {
                let how = match lanes {
                    1 => "one transaction".to_string(),
                    _ => format!("{lanes} transactions side by side"),
                };
                info!(
                    "the target accepts the schema: {n} entries run in {how}, pre-data kept and the rest rolled back"
                );
                return Ok(());
            }
            Rehearsal::Skipped(why) => info!("schema not rehearsed on the target: {why}"),
        }
    }
    prepare(ctx, clean).await
}

/// Creates schemas, types, functions, tables... (pre-data) on the target in batches, each its
/// own transaction. `clean` first drops what an earlier, interrupted attempt created (as
/// --drop-if-exists does).
///
/// A first attempt that drops nothing runs in lanes (see `lanes`) on up to --restore-jobs
/// sessions side by side; an attempt after a failure runs on one.
pub async fn prepare(ctx: &Ctx, clean: bool) -> Result<()> {
    let drop_first = ctx.cfg.drop_if_exists || clean;
    if drop_first {
        drop_existing(ctx, DROP_LIST, "drop.sql").await?;
    }
    let lanes = if !drop_first && ctx.cfg.restore_jobs > 1 {
        let pre = active_ids_in(&ctx.workdir, PRE_DATA_LIST)?;
        let toc = ctx.restorer().archive(&|_| false)?;
        write_lane_lists(&ctx.workdir, &toc.entries, &[&pre], ctx.cfg.restore_jobs)?
    } else {
        0
    };
    if lanes < 2 {
        return restore_batched(ctx, PRE_DATA_LIST, PRE_DATA_SQL, "pre-data").await;
    }
    info!("pre-data runs in batches on {lanes} sessions side by side");
    let lane = |k: usize| async move {
        restore_batched(
            ctx,
            &lane_file(0, k, "list"),
            &lane_file(0, k, "sql"),
            "pre-data",
        )
        .await
    };
    futures::future::try_join_all((0..lanes).map(lane)).await?;
    Ok(())
}

fn read_script(path: &std::path::Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("read the {what} script"))?;
    String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!("the {what} script is not valid UTF-8 (pg_dump was asked for UTF-8)")
    })
}

/// Restores the entries of `list`: pg_restore writes the SQL it would run, and neoncopy sends
/// it in batches on its own connection, one round trip per batch instead of one per statement
/// (which is what a schema of many objects costs over a wide-area link).
async fn restore_batched(ctx: &Ctx, list: &str, sql_file: &str, what: &str) -> Result<()> {
    let script = ctx.restorer().script(list, sql_file, what).await?;
    if script.entries.is_empty() {
        return Ok(());
    }
    let client = ctx.target.connect().await?;
    let session = adapt_session(&client, &script.session).await?;
    client
        .batch_execute(&session)
        .await
        .db()
        .context("set up the schema session")?;
    run_in_batches(&client, &script).await
}

/// The session statements of a script, without the `SET`s of parameters the target does not
/// have (a newer pg_restore sets `transaction_timeout`, which a server before 17 refuses).
async fn adapt_session(client: &tokio_postgres::Client, statements: &[String]) -> Result<String> {
    let names: Vec<String> = statements
        .iter()
        .filter_map(|s| script::set_name(s))
        .collect();
    let known: HashSet<String> = client
        .query(crate::pg::sql::KNOWN_SETTINGS, &[&names])
        .await
        .db()
        .context("look up the target's settings")?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = String::new();
    for s in statements {
        match script::set_name(s) {
            Some(name) if !known.contains(&name) => {
                tracing::debug!("left out for this target: {s}");
            }
            _ => {
                out.push_str(s);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// One archive entry of a pg_restore script: its header, and where its SQL is in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptEntry {
    pub name: String,
    pub sql: std::ops::Range<usize>,
}

/// A pg_restore script split into its session statements and its entries. The entries are
/// places in the script's text, which is held once (a schema of many thousand tables writes
/// scripts of tens of megabytes).
#[derive(Debug)]
pub struct Script {
    text: String,
    pub session: Vec<String>,
    pub entries: Vec<ScriptEntry>,
}

impl Script {
    /// An entry's statements as pg_restore wrote them, with whatever comments stand between
    /// them.
    pub fn sql(&self, entry: &ScriptEntry) -> &str {
        &self.text[entry.sql.clone()]
    }

    /// The statements of consecutive entries, to send in one round trip.
    fn batch_sql(&self, batch: &[ScriptEntry]) -> String {
        let mut out = String::with_capacity(batch.iter().map(|e| e.sql.len() + 1).sum());
        for e in batch {
            out.push_str(self.sql(e));
            out.push('\n');
        }
        out
    }
}

/// Whether a comment between statements is the header pg_restore writes before an entry.
fn entry_header(comment: &str) -> Option<&str> {
    comment
        .strip_prefix("-- Name: ")
        .or_else(|| comment.strip_prefix("-- Data for Name: "))
        .filter(|rest| rest.contains("; Type: "))
}

/// `TYPE schema.name` from a header's `name; Type: TYPE; Schema: schema; Owner: owner`.
fn describe_header(header: &str) -> String {
    let Some((name, rest)) = header.split_once("; Type: ") else {
        return header.to_string();
    };
    let (kind, rest) = rest.split_once("; Schema: ").unwrap_or((rest, ""));
    let schema = rest.split("; Owner: ").next().unwrap_or("-");
    if schema.is_empty() || schema == "-" {
        format!("{kind} {name}")
    } else {
        format!("{kind} {schema}.{name}")
    }
}

/// Splits a pg_restore script into its session statements (those before the first entry) and
/// its entries (each introduced by the `-- Name: ...; Type: ...` header pg_restore writes
/// between statements). psql meta-commands (`\restrict`) are left out. The `SET`s pg_restore
/// writes just before an entry's header (tablespace, access method) go with that entry.
pub fn split_script(text: String) -> Script {
    let mut session: Vec<String> = Vec::new();
    // Each entry: its name, its statements' places, whether one is more than a SET.
    let mut entries: Vec<(String, Vec<std::ops::Range<usize>>)> = Vec::new();
    let base = text.as_ptr() as usize;
    let place = |s: &str| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    for piece in script::pieces(&text) {
        match piece {
            script::Piece::Comment(c) => {
                if let Some(name) = entry_header(c) {
                    // Trailing SETs of the entry before belong to this one.
                    let mut carried = Vec::new();
                    if let Some((_, stmts)) = entries.last_mut() {
                        while stmts
                            .last()
                            .is_some_and(|r| script::set_name(&text[r.clone()]).is_some())
                        {
                            carried.push(stmts.pop().expect("checked"));
                        }
                    }
                    carried.reverse();
                    entries.push((describe_header(name), carried));
                }
            }
            script::Piece::Meta(_) => {}
            script::Piece::Statement(s) => match entries.last_mut() {
                Some((_, stmts)) => stmts.push(place(s)),
                None => session.push(s.to_string()),
            },
        }
    }
    let entries = entries
        .into_iter()
        .filter(|(_, stmts)| {
            stmts
                .iter()
                .any(|r| script::set_name(&text[r.clone()]).is_none())
        })
        .map(|(name, stmts)| ScriptEntry {
            name,
            sql: stmts[0].start..stmts[stmts.len() - 1].end,
        })
        .collect();
    Script {
        text,
        session,
        entries,
    }
}

/// Most entries, and bytes, sent in one round trip.
const BATCH_ENTRIES: usize = 200;
const BATCH_BYTES: usize = 1 << 20;

/// Runs the entries in batches, each batch one round trip and one transaction. When a batch
/// fails it is run again entry by entry, so that the error names the entry at fault; when
/// every entry then succeeds on its own (statements that fail only together), the run goes on.
async fn run_in_batches(client: &tokio_postgres::Client, script: &Script) -> Result<()> {
    for batch in batches(&script.entries) {
        let sql = script.batch_sql(batch);
        if let Err(e) = client.batch_execute(&sql).await {
            let err = crate::pg::db_err(e);
            if crate::pg::retry::is_transient(&err) {
                return Err(err.context("create the schema on the target"));
            }
            // The batch rolled back whole: run its entries one at a time to find the one at
            // fault.
            for entry in batch {
                client
                    .batch_execute(script.sql(entry))
                    .await
                    .db()
                    .with_context(|| format!("create {} on the target", entry.name))?;
            }
            tracing::debug!(
                "a batch of {} entries failed together ({err:#}) but each succeeded on its own",
                batch.len()
            );
        }
    }
    Ok(())
}

/// Consecutive entries, at most BATCH_ENTRIES and about BATCH_BYTES a batch.
fn batches(entries: &[ScriptEntry]) -> Vec<&[ScriptEntry]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < entries.len()
            && end - start < BATCH_ENTRIES
            && (bytes < BATCH_BYTES || end == start)
        {
            bytes += entries[end].sql.len();
            end += 1;
        }
        out.push(&entries[start..end]);
        start = end;
    }
    out
}

/// Foreign keys, triggers, rules, policies, materialized view data, comments and whatever else
/// post-data holds that neoncopy did not build itself, in phases (see PostPhase), with the
/// database's own settings applied before materialized views are refreshed. `clean` first
/// drops what an earlier, interrupted attempt created of these.
pub async fn finalize(ctx: &Ctx, clean: bool) -> Result<()> {
    if clean {
        drop_existing(ctx, POST_DATA_LIST, "drop-post-data.sql").await?;
    }
    let active = active_ids_in(&ctx.workdir, POST_DATA_LIST)?;
    let toc = ctx
        .restorer()
        .archive(&|desc| desc == "FK CONSTRAINT" || desc == "MATERIALIZED VIEW DATA")?;
    let fk_bytes = |oid: u32| ctx.catalog.foreign_keys.get(&oid).and_then(|f| f.bytes);
    let mut by_phase: HashMap<PostPhase, Vec<&Entry>> = HashMap::new();
    for e in toc.entries.iter().filter(|e| active.contains(&e.dump_id)) {
        by_phase
            .entry(post_phase(e, &fk_bytes))
            .or_default()
            .push(e);
    }
    let count = |p| by_phase.get(&p).map_or(0, Vec::len);
    info!(
        "post-data: {} entries in batches, {} foreign keys side by side, {} last, {} materialized views to refresh",
        count(PostPhase::Batched),
        count(PostPhase::Parallel),
        count(PostPhase::Last),
        count(PostPhase::Refresh)
    );
    // The lists of both batched phases are written and the entries the later steps need are
    // kept, then the table of contents goes: it is not held while the scripts run.
    let mut lists = Vec::new();
    for (phase, name) in [
        (PostPhase::Batched, "post-data-1"),
        (PostPhase::Last, "post-data-3"),
    ] {
        let Some(entries) = by_phase.get(&phase) else {
            continue;
        };
        let ids: HashSet<u32> = entries.iter().map(|e| e.dump_id).collect();
        let list_file = format!("{name}.list");
        write_restore_list(
            &ctx.workdir,
            &list_file,
            &toc.entries,
            &|e| ids.contains(&e.dump_id),
            &LeftOut::default(),
        )?;
        lists.push((phase, name, list_file));
    }
    let owned = |phase| -> Vec<Entry> {
        by_phase
            .get(&phase)
            .map(|v| v.iter().map(|e| (*e).clone()).collect())
            .unwrap_or_default()
    };
    let (fks, views) = (owned(PostPhase::Parallel), owned(PostPhase::Refresh));
    drop(by_phase);
    drop(toc);
    for (phase, name, list_file) in &lists {
        if *phase == PostPhase::Last {
            continue;
        }
        restore_batched(ctx, list_file, &format!("{name}.sql"), "post-data").await?;
    }
    super::foreign_keys::run(ctx, &fks.iter().collect::<Vec<_>>()).await?;
    for (phase, name, list_file) in &lists {
        if *phase == PostPhase::Last {
            restore_batched(ctx, list_file, &format!("{name}.sql"), "post-data").await?;
        }
    }
    if !ctx.cfg.skip_db_properties {
        super::db_properties::run(ctx).await?;
    }
    // Materialized views are refreshed last, on a session that starts after the database's
    // settings are in place (a view over now()::date depends on TimeZone), in archive order
    // (a view may read another).
    if !views.is_empty() {
        let client = ctx.target.connect().await?;
        let ddl = ctx.ddl()?;
        client
            .batch_execute(&ddl.session)
            .await
            .db()
            .context("set up the refresh session")?;
        for e in &views {
            let sql = e.defn.as_deref().unwrap_or_default();
            client
                .batch_execute(sql)
                .await
                .db()
                .with_context(|| format!("refresh materialized view {}.{}", e.namespace, e.tag))?;
        }
    }
    Ok(())
}

/// The phases of post-data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PostPhase {
    /// In archive order, in batches on one session: indexes and constraints neoncopy does not
    /// build (partitioned tables' own, ON ONLY, and their ATTACH PARTITION), foreign keys that
    /// read little to validate, triggers, rules, policies, publications' tables...
    Batched,
    /// Side by side on `--restore-jobs` sessions, no two on the same table at once: foreign
    /// keys whose validation reads much.
    Parallel,
    /// After both: comments and security labels (some are on the constraints above), event
    /// triggers (which would fire on the statements before them) and privileges.
    Last,
    /// Materialized view data, after the database settings (as pg_restore refreshes after
    /// everything else).
    Refresh,
}

/// Foreign keys whose table and referenced table together are bigger than this are validated
/// side by side.
const BIG_FOREIGN_KEY_BYTES: i64 = 64 << 20;

/// The phase of one archive entry; `fk_bytes` gives what validating a foreign key reads, when
/// known.
fn post_phase(e: &Entry, fk_bytes: &dyn Fn(u32) -> Option<i64>) -> PostPhase {
    match &*e.desc {
        "FK CONSTRAINT" => {
            if fk_bytes(e.oid).is_some_and(|b| b < BIG_FOREIGN_KEY_BYTES) {
                PostPhase::Batched
            } else {
                PostPhase::Parallel
            }
        }
        "MATERIALIZED VIEW DATA" => PostPhase::Refresh,
        "COMMENT" | "SECURITY LABEL" | "EVENT TRIGGER" | "ACL" | "DEFAULT ACL" => PostPhase::Last,
        _ => PostPhase::Batched,
    }
}

/// The DROP ... IF EXISTS statements pg_restore --clean would run for the entries of `list`,
/// taken from its script output and run in one transaction (for --drop-if-exists, and before
/// redoing an interrupted schema step).
async fn drop_existing(ctx: &Ctx, list: &str, script: &str) -> Result<()> {
    let statements = ctx.restorer().drop_script(list, script).await?;
    if !statements.iter().any(|s| script::set_name(s).is_none()) {
        return Ok(());
    }
    let client = ctx.target.connect().await?;
    let drops = adapt_session(&client, &statements).await?;
    client
        .batch_execute(&format!("begin;\n{drops}\ncommit;"))
        .await
        .db()
        .context("drop existing objects on the target")?;
    info!("dropped the archive's objects ({list}) from the target where they existed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        id: u32,
        catalog: u32,
        oid: u32,
        desc: &str,
        ns: &str,
        tag: &str,
        placed: Section,
    ) -> Entry {
        Entry {
            dump_id: id,
            catalog_oid: catalog,
            oid,
            tag: tag.into(),
            desc: desc.into(),
            section: placed,
            placed,
            defn: None,
            namespace: ns.into(),
            tablespace: None,
            owner: "postgres".into(),
            dependencies: Box::new([]),
        }
    }

    fn toc() -> Vec<Entry> {
        use Section::*;
        vec![
            entry(214, 1259, 16385, "TABLE", "public", "t", PreData),
            entry(
                3201,
                2606,
                16391,
                "CONSTRAINT",
                "public",
                "t t_pkey",
                PostData,
            ),
            entry(3202, 1259, 16392, "INDEX", "public", "t_v_idx", PostData),
            entry(3203, 1259, 16399, "INDEX", "public", "mv_id_idx", PostData),
            entry(5, 3079, 16500, "EXTENSION", "", "pgcrypto", PreData),
            entry(3300, 0, 0, "COMMENT", "", "EXTENSION pgcrypto", PreData),
            entry(
                3304,
                0,
                0,
                "COMMENT",
                "",
                "EXTENSION \"uuid-ossp\"",
                PreData,
            ),
            entry(3301, 0, 0, "INDEX ATTACH", "public", "t_1_v_idx", PostData),
            entry(3302, 0, 0, "INDEX ATTACH", "public", "t_2_v_idx", PostData),
        ]
    }

    #[test]
    fn lists_leave_out_by_oid_name_and_attachment() {
        let toc = toc();
        let built = LeftOut {
            objects: HashSet::from([(2606, 16391), (1259, 16392)]),
            ..LeftOut::default()
        };
        let (out, n) = restore_list(&toc, &|_| true, &built);
        assert_eq!(n, 2);
        assert!(out.contains("\n;3201; 2606 16391 CONSTRAINT public t t_pkey postgres\n"));
        assert!(out.contains("\n;3202; 1259 16392 INDEX"));
        assert!(out.contains("\n3203; 1259 16399 INDEX"));
        assert!(out.contains("\n214; 1259 16385 TABLE public t postgres\n"));
        assert_eq!(active_ids(&out).len(), toc.len() - 2);
        let extensions = LeftOut {
            extensions: ["pgcrypto".to_string(), "uuid-ossp".to_string()].into(),
            ..LeftOut::default()
        };
        let (out, n) = restore_list(&toc, &|_| true, &extensions);
        assert_eq!(n, 3);
        assert!(out.contains("\n;5; 3079 16500 EXTENSION - pgcrypto postgres\n"));
        assert!(out.contains("\n;3304; "));
        let (out, n) = restore_list(&toc, &|e| e.dump_id == 214, &LeftOut::default());
        assert_eq!(n, 0);
        assert_eq!(active_ids(&out), HashSet::from([214]));
        // A partition index left out takes its attachment along, and only its own.
        let attach = LeftOut {
            attachments: HashSet::from([("public".to_string(), "t_1_v_idx".to_string())]),
            ..LeftOut::default()
        };
        let (out, n) = restore_list(&toc, &|_| true, &attach);
        assert_eq!(n, 1);
        assert!(out.contains("\n;3301; 0 0 INDEX ATTACH public t_1_v_idx"));
        assert!(out.contains("\n3302; 0 0 INDEX ATTACH public t_2_v_idx"));
    }

    #[test]
    fn rehearsals_leave_out_built_entries_nothing_needs() {
        use Section::*;
        let mut toc = vec![
            entry(1, 1259, 10, "TABLE", "public", "a", PreData),
            entry(2, 1259, 11, "TABLE", "public", "b", PreData),
            entry(3, 2606, 20, "CONSTRAINT", "public", "a a_pkey", PostData),
            entry(4, 1259, 21, "INDEX", "public", "a_v", PostData),
            entry(
                5,
                2606,
                22,
                "FK CONSTRAINT",
                "public",
                "b b_a_fkey",
                PostData,
            ),
            entry(6, 0, 0, "MATERIALIZED VIEW DATA", "public", "mv", PostData),
            entry(7, 1259, 23, "INDEX", "public", "b_v", PostData),
            entry(8, 0, 0, "COMMENT", "public", "INDEX b_v", PostData),
        ];
        toc[4].dependencies = Box::new([2, 3]);
        toc[7].dependencies = Box::new([7]);
        let built = HashSet::from([(2606, 20), (1259, 21), (1259, 23)]);
        let mut ids: Vec<u32> = rehearsed_entries(&toc, &LeftOut::default(), &built)
            .into_iter()
            .collect();
        ids.sort();
        // The key the foreign key needs and the index the comment is on stay; a_v goes, and
        // so does the view's data.
        assert_eq!(ids, vec![1, 2, 3, 5, 7, 8]);
    }

    #[test]
    fn names_with_line_breaks_cannot_select_entries() {
        let mut toc = toc();
        toc[0].tag = "t\n3202; x".into();
        let (out, _) = restore_list(&toc[..1], &|_| false, &LeftOut::default());
        assert!(active_ids(&out).is_empty(), "{out}");
    }

    #[test]
    fn scripts_split_into_entries() {
        let script = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET a = 1;\nSELECT 1;\n\nSET default_tablespace = '';\n\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.t (\n    id int\n);\n\n\nSET default_tablespace = fast;\n\n--\n-- Name: f(); Type: FUNCTION; Schema: public; Owner: -\n--\n\nCREATE FUNCTION public.f() RETURNS int AS $$\n--\n-- Name: x; Type: TABLE; Schema: public; Owner: -\n--\n\\d+';\r\nselect 1 $$;\n\n\\unrestrict abc\n";
        let split = split_script(script.to_string());
        let (session, entries) = (&split.session, &split.entries);
        assert_eq!(
            session,
            &vec!["SET a = 1;", "SELECT 1;", "SET default_tablespace = '';"]
        );
        assert_eq!(entries.len(), 2, "{entries:#?}");
        assert_eq!(entries[0].name, "TABLE public.t");
        assert_eq!(entries[1].name, "FUNCTION public.f()");
        assert_eq!(
            describe_header("no_alter_table; Type: EVENT TRIGGER; Schema: -; Owner: -"),
            "EVENT TRIGGER no_alter_table"
        );
        assert_eq!(
            split.sql(&entries[0]),
            "CREATE TABLE public.t (\n    id int\n);"
        );
        // The SET carried from before the header comes with it; the header is a comment.
        let f = split.sql(&entries[1]);
        assert!(
            f.starts_with("SET default_tablespace = fast;\n\n--\n-- Name: f(); Type: FUNCTION"),
            "{f}"
        );
        assert!(
            f.ends_with(
                "\n-- Name: x; Type: TABLE; Schema: public; Owner: -\n--\n\\d+';\r\nselect 1 $$;"
            ),
            "{f}"
        );
        assert!(!f.contains("unrestrict"));
        assert_eq!(
            split.batch_sql(entries),
            format!("{}\n{f}\n", split.sql(&entries[0]))
        );
    }

    #[test]
    fn post_data_phases() {
        use Section::PostData;
        let fk = |oid: u32| match oid {
            16400 => Some(1 << 20),
            16401 => Some(1 << 30),
            _ => None,
        };
        let phase = |desc: &str, oid: u32| {
            post_phase(&entry(1, 2606, oid, desc, "public", "x", PostData), &fk)
        };
        assert_eq!(phase("CONSTRAINT", 16391), PostPhase::Batched);
        assert_eq!(phase("FK CONSTRAINT", 16400), PostPhase::Batched);
        assert_eq!(phase("FK CONSTRAINT", 16401), PostPhase::Parallel);
        assert_eq!(phase("FK CONSTRAINT", 16402), PostPhase::Parallel);
        assert_eq!(phase("TRIGGER", 16403), PostPhase::Batched);
        assert_eq!(phase("COMMENT", 0), PostPhase::Last);
        assert_eq!(phase("MATERIALIZED VIEW DATA", 16404), PostPhase::Refresh);
        assert_eq!(phase("EVENT TRIGGER", 16405), PostPhase::Last);
    }

    #[test]
    fn drop_script_prefix() {
        let script = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET x = 1;\nDROP TABLE IF EXISTS public.t;\nSET default_tablespace = '';\n\n--\n-- Name: t; Type: TABLE\n--\nCREATE TABLE public.t ();\n";
        let d = split_script(script.to_string()).session;
        assert_eq!(
            d,
            vec![
                "SET x = 1;",
                "DROP TABLE IF EXISTS public.t;",
                "SET default_tablespace = '';"
            ]
        );
    }
}
