//! Schema steps: pg_dump of pre-data and post-data into the work directory, the rewritten
//! restore list, pg_restore of pre-data before the data and of the rest of post-data after it.

use super::Ctx;
use crate::catalog::{PG_CLASS, PG_CONSTRAINT};
use crate::pg::{tools, DbResultExt};
use anyhow::{Context, Result};
use std::collections::HashSet;
use tracing::info;

const ARCHIVE: &str = "schema.dump";
const PRE_DATA_LIST: &str = "pre-data.list";
const POST_DATA_LIST: &str = "post-data.list";
const DROP_LIST: &str = "drop.list";
const PRE_DATA_SQL: &str = "pre-data.sql";

/// `pg_dump -Fc --section=pre-data --section=post-data` in the clone's snapshot, then the
/// restore lists.
pub async fn dump(ctx: &Ctx) -> Result<()> {
    let archive = ctx.workdir.file(ARCHIVE);
    let mut args = vec![
        "--format=custom".to_string(),
        format!("--file={}", archive.display()),
        "--section=pre-data".into(),
        "--section=post-data".into(),
        "--no-subscriptions".into(),
    ];
    if let Some(id) = &ctx.snapshot {
        args.push(format!("--snapshot={id}"));
    }
    if ctx.cfg.skip_large_objects {
        args.push("--no-blobs".into());
    }
    args.extend(ctx.selection.pg_dump_args());
    args.push(format!(
        "--dbname={}",
        ctx.source.params.to_libpq_without_secrets()
    ));
    tools::run(&ctx.tools.pg_dump, &args, &ctx.source.params, "pg_dump").await?;

    let list = list_archive(ctx, None).await?;
    // pg_restore decides the section of a comment by the entries around it, so a comment on a
    // constraint neoncopy builds would move into pre-data once that constraint is left out.
    // The lists therefore name each section's entries explicitly, as the archive has them.
    let pre_data = entry_ids(&list_archive(ctx, Some("pre-data")).await?);
    let left = left_out(ctx);
    let (pre, skipped_pre) = rewrite_list(&list, &|id| pre_data.contains(&id), &left);
    let (post, skipped_post) = rewrite_list(&list, &|id| !pre_data.contains(&id), &left);
    info!(
        "restore lists: {} entries left to neoncopy's own steps or skipped",
        (skipped_pre + skipped_post).saturating_sub(list_entries(&list))
    );
    std::fs::write(ctx.workdir.file(PRE_DATA_LIST), pre).context("write pre-data list")?;
    std::fs::write(ctx.workdir.file(POST_DATA_LIST), post).context("write post-data list")?;
    let extensions_only = LeftOut {
        extensions: left.extensions.clone(),
        ..LeftOut::default()
    };
    let (drop, _) = rewrite_list(&list, &|_| true, &extensions_only);
    std::fs::write(ctx.workdir.file(DROP_LIST), drop).context("write drop list")?;
    Ok(())
}

/// `pg_restore --list` of the archive, optionally of one section only.
async fn list_archive(ctx: &Ctx, section: Option<&str>) -> Result<String> {
    let mut args = vec!["--list".to_string()];
    if let Some(s) = section {
        args.push(format!("--section={s}"));
    }
    args.push(ctx.workdir.file(ARCHIVE).display().to_string());
    tools::run(
        &ctx.tools.pg_restore,
        &args,
        &ctx.target.params,
        "pg_restore --list",
    )
    .await
}

/// The dump ids of the entries of a list.
fn entry_ids(list: &str) -> HashSet<u32> {
    list.lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| l.split_once(';').and_then(|(id, _)| id.trim().parse().ok()))
        .collect()
}

fn list_entries(list: &str) -> usize {
    entry_ids(list).len()
}

/// Archive entries not to restore.
#[derive(Debug, Default)]
struct LeftOut {
    /// By (catalog table oid, object oid): what neoncopy builds itself, and the indexes and
    /// constraints the filters leave out.
    objects: HashSet<(u32, u32)>,
    /// Extensions the filters leave out (with their comments).
    extensions: std::collections::BTreeSet<String>,
    /// `schema name ` of partition indexes the filters leave out: their `INDEX ATTACH`
    /// entries carry no oid.
    attachments: HashSet<String>,
}

fn left_out(ctx: &Ctx) -> LeftOut {
    let mut objects: HashSet<(u32, u32)> = ctx
        .catalog
        .indexes
        .iter()
        .map(|i| i.archive_oid())
        .collect();
    let sel = &ctx.selection;
    objects.extend(sel.excluded_indexes.keys().map(|oid| (PG_CLASS, *oid)));
    objects.extend(
        sel.excluded_constraints
            .iter()
            .map(|oid| (PG_CONSTRAINT, *oid)),
    );
    LeftOut {
        objects,
        extensions: sel.excluded_extensions.clone(),
        attachments: sel
            .excluded_indexes
            .values()
            .map(|(schema, name)| format!("{schema} {name} "))
            .collect(),
    }
}

/// One entry line of a restore list: `id; catalog-oid object-oid TYPE schema name owner`.
struct ListEntry<'a> {
    id: Option<u32>,
    catalog_oid: Option<u32>,
    object_oid: Option<u32>,
    /// TYPE schema name owner (types may have several words).
    desc: &'a str,
}

fn list_entry(line: &str) -> Option<ListEntry<'_>> {
    let (id, rest) = line.split_once("; ")?;
    let mut parts = rest.splitn(3, ' ');
    let catalog_oid = parts.next().and_then(|p| p.parse().ok());
    let object_oid = parts.next().and_then(|p| p.parse().ok());
    Some(ListEntry {
        id: id.trim().parse().ok(),
        catalog_oid,
        object_oid,
        desc: parts.next().unwrap_or(""),
    })
}

/// Keeps the entries `wanted` selects by dump id, and comments out the others and those
/// `left` names. Returns the new list and how many entries were commented out.
fn rewrite_list(list: &str, wanted: &dyn Fn(u32) -> bool, left: &LeftOut) -> (String, usize) {
    let mut out = String::with_capacity(list.len());
    let mut skipped = 0;
    for line in list.lines() {
        if line.starts_with(';') || line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut skip = false;
        if let Some(ListEntry {
            id,
            catalog_oid,
            object_oid,
            desc,
        }) = list_entry(line)
        {
            if id.is_some_and(|id| !wanted(id)) {
                skip = true;
            }
            if let (Some(c), Some(o)) = (catalog_oid, object_oid) {
                if left.objects.contains(&(c, o)) {
                    skip = true;
                }
            }
            let extension = desc
                .strip_prefix("EXTENSION - ")
                .or_else(|| desc.strip_prefix("COMMENT - EXTENSION "))
                .map(|rest| rest.trim_end());
            if let Some(name) = extension {
                // "EXTENSION - name" (no owner), "COMMENT - EXTENSION name owner"
                let name_only = name.split(' ').next().unwrap_or(name);
                if left.extensions.contains(name) || left.extensions.contains(name_only) {
                    skip = true;
                }
            }
            if let Some(rest) = desc.strip_prefix("INDEX ATTACH ") {
                if left
                    .attachments
                    .iter()
                    .any(|a| rest.starts_with(a.as_str()))
                {
                    skip = true;
                }
            }
        }
        if skip {
            skipped += 1;
            out.push(';');
        }
        out.push_str(line);
        out.push('\n');
    }
    (out, skipped)
}

fn restore_args(ctx: &Ctx, list: &str) -> Vec<String> {
    let mut args = vec![
        format!("--dbname={}", ctx.target.params.to_libpq_without_secrets()),
        format!("--use-list={}", ctx.workdir.file(list).display()),
        "--exit-on-error".into(),
    ];
    if ctx.cfg.no_owner {
        args.push("--no-owner".into());
    }
    if ctx.cfg.no_acl {
        args.push("--no-acl".into());
    }
    if ctx.cfg.no_comments {
        args.push("--no-comments".into());
    }
    args
}

/// Whether an earlier run's archive and lists are all there.
pub fn archive_ready(ctx: &Ctx) -> bool {
    [ARCHIVE, PRE_DATA_LIST, POST_DATA_LIST, DROP_LIST]
        .iter()
        .all(|f| ctx.workdir.file(f).is_file())
}

/// Creates schemas, types, functions, tables... (pre-data) on the target. `clean` first drops
/// what an earlier, interrupted attempt created (as --drop-if-exists does).
pub async fn prepare(ctx: &Ctx, clean: bool) -> Result<()> {
    if ctx.cfg.drop_if_exists || clean {
        drop_existing(ctx, DROP_LIST, "drop.sql").await?;
    }
    restore_batched(ctx, PRE_DATA_LIST, PRE_DATA_SQL, "pre-data").await
}

/// Restores the entries of `list`: pg_restore writes the SQL it would run, and neoncopy sends
/// it in batches on its own connection, one round trip per batch instead of one per statement
/// (which is what a schema of many objects costs over a wide-area link).
async fn restore_batched(ctx: &Ctx, list: &str, sql_file: &str, what: &str) -> Result<()> {
    let sql_path = ctx.workdir.file(sql_file);
    let mut args = restore_args(ctx, list);
    args.retain(|a| !a.starts_with("--dbname=") && a != "--exit-on-error");
    args.push(format!("--file={}", sql_path.display()));
    args.push(ctx.workdir.file(ARCHIVE).display().to_string());
    tools::run(
        &ctx.tools.pg_restore,
        &args,
        &ctx.target.params,
        &format!("pg_restore ({what} script)"),
    )
    .await?;
    let script =
        std::fs::read_to_string(&sql_path).with_context(|| format!("read the {what} script"))?;
    let (session, entries) = split_script(&script);
    if entries.is_empty() {
        return Ok(());
    }
    let client = ctx.target.connect().await?;
    client
        .batch_execute(&session)
        .await
        .db()
        .context("set up the schema session")?;
    run_in_batches(&client, &entries).await
}

/// One archive entry of a pg_restore script: its header line and its SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptEntry {
    pub name: String,
    pub sql: String,
}

/// Splits a pg_restore script into its session settings and its entries (each introduced by
/// the `--` / `-- Name: ...; Type: ...` / `--` header pg_restore writes). psql meta-commands
/// (`\restrict`) are left out.
pub fn split_script(script: &str) -> (String, Vec<ScriptEntry>) {
    let lines: Vec<&str> = script.lines().collect();
    let mut session = String::new();
    let mut entries: Vec<ScriptEntry> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let is_header = lines[i] == "--"
            && lines
                .get(i + 1)
                .is_some_and(|l| l.starts_with("-- Name: ") && l.contains("; Type: "))
            && lines.get(i + 2) == Some(&"--");
        if is_header {
            entries.push(ScriptEntry {
                name: lines[i + 1].trim_start_matches("-- Name: ").to_string(),
                sql: String::new(),
            });
            i += 3;
            continue;
        }
        let line = lines[i];
        i += 1;
        if line.starts_with('\\') {
            continue;
        }
        let target = match entries.last_mut() {
            Some(e) => &mut e.sql,
            None => &mut session,
        };
        target.push_str(line);
        target.push('\n');
    }
    entries.retain(|e| !e.sql.trim().is_empty());
    (session, entries)
}

/// Most entries, and bytes, sent in one round trip.
const BATCH_ENTRIES: usize = 200;
const BATCH_BYTES: usize = 1 << 20;

/// Runs the entries in batches, each batch one round trip and one transaction. When a batch
/// fails it is run again entry by entry, so that the error names the entry at fault.
async fn run_in_batches(client: &tokio_postgres::Client, entries: &[ScriptEntry]) -> Result<()> {
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
        let batch: String = entries[start..end].iter().map(|e| e.sql.as_str()).collect();
        if let Err(e) = client.batch_execute(&batch).await {
            let err = crate::pg::db_err(e);
            if crate::pg::retry::is_transient(&err) {
                return Err(err.context("create the schema on the target"));
            }
            // The batch rolled back whole: find the entry at fault.
            for entry in &entries[start..end] {
                client
                    .batch_execute(&entry.sql)
                    .await
                    .db()
                    .with_context(|| format!("create {} on the target", entry.name))?;
            }
            return Err(err.context("create the schema on the target"));
        }
        start = end;
    }
    Ok(())
}

/// Foreign keys, triggers, rules, policies, materialized view data, comments and whatever else
/// post-data holds that neoncopy did not build itself, in three phases (see PostPhase). `clean`
/// first drops what an earlier, interrupted attempt created of these.
pub async fn finalize(ctx: &Ctx, clean: bool) -> Result<()> {
    if clean {
        drop_existing(ctx, POST_DATA_LIST, "drop-post-data.sql").await?;
    }
    let list = std::fs::read_to_string(ctx.workdir.file(POST_DATA_LIST))
        .context("read the post-data list")?;
    let fk_bytes = |oid: u32| ctx.catalog.foreign_keys.get(&oid).copied().flatten();
    let phases = [
        (PostPhase::Batched, "post-data-1"),
        (PostPhase::Parallel, "post-data-2"),
        (PostPhase::Last, "post-data-3"),
    ];
    let mut counts = Vec::new();
    for (phase, name) in phases {
        let (phase_list, entries) = post_data_phase_list(&list, phase, &fk_bytes);
        counts.push(entries);
        if entries == 0 {
            continue;
        }
        let list_file = format!("{name}.list");
        std::fs::write(ctx.workdir.file(&list_file), phase_list)
            .context("write a post-data list")?;
        if phase == PostPhase::Parallel {
            let mut args = restore_args(ctx, &list_file);
            args.push(format!("--jobs={}", ctx.cfg.restore_jobs));
            args.push(ctx.workdir.file(ARCHIVE).display().to_string());
            tools::run(
                &ctx.tools.pg_restore,
                &args,
                &ctx.target.params,
                "pg_restore (post-data)",
            )
            .await?;
        } else {
            restore_batched(ctx, &list_file, &format!("{name}.sql"), "post-data").await?;
        }
    }
    info!(
        "post-data: {} entries in batches, {} by pg_restore --jobs, {} last",
        counts[0], counts[1], counts[2]
    );
    Ok(())
}

/// The three phases of post-data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PostPhase {
    /// In archive order, in batches on one session: indexes and constraints neoncopy does not
    /// build (partitioned tables' own, ON ONLY, and their ATTACH PARTITION), foreign keys that
    /// read little to validate, triggers, rules, policies, publications' tables...
    Batched,
    /// By pg_restore --jobs, which runs them side by side where their locks allow: foreign
    /// keys whose validation reads much, and materialized view data (refreshes, in dependency
    /// order).
    Parallel,
    /// After both: comments and security labels (some are on the constraints above), event
    /// triggers (which would fire on the statements before them) and privileges.
    Last,
}

/// Foreign keys whose table and referenced table together are bigger than this are validated
/// by pg_restore --jobs, several at once.
const BIG_FOREIGN_KEY_BYTES: i64 = 64 << 20;

/// The phase of one entry of a restore list (`id; catalog-oid object-oid TYPE schema name
/// owner`); `fk_bytes` gives what validating a foreign key reads, when known.
fn post_phase(line: &str, fk_bytes: &dyn Fn(u32) -> Option<i64>) -> PostPhase {
    let Some(ListEntry {
        object_oid, desc, ..
    }) = list_entry(line)
    else {
        return PostPhase::Batched;
    };
    if desc.starts_with("FK CONSTRAINT ") {
        let small = object_oid
            .and_then(fk_bytes)
            .is_some_and(|b| b < BIG_FOREIGN_KEY_BYTES);
        return if small {
            PostPhase::Batched
        } else {
            PostPhase::Parallel
        };
    }
    if desc.starts_with("MATERIALIZED VIEW DATA ") {
        return PostPhase::Parallel;
    }
    let last = [
        "COMMENT ",
        "SECURITY LABEL ",
        "EVENT TRIGGER ",
        "ACL ",
        "DEFAULT ACL ",
    ];
    if last.iter().any(|p| desc.starts_with(p)) {
        return PostPhase::Last;
    }
    PostPhase::Batched
}

/// The post-data list with only the entries of `phase` left active, and how many there are.
fn post_data_phase_list(
    list: &str,
    phase: PostPhase,
    fk_bytes: &dyn Fn(u32) -> Option<i64>,
) -> (String, usize) {
    let mut out = String::with_capacity(list.len());
    let mut active = 0;
    for line in list.lines() {
        let entry = !line.starts_with(';') && !line.trim().is_empty();
        if entry {
            if post_phase(line, fk_bytes) == phase {
                active += 1;
            } else {
                out.push(';');
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    (out, active)
}

/// The DROP ... IF EXISTS statements pg_restore --clean would run for the entries of `list`,
/// taken from its script output and run in one transaction (for --drop-if-exists, and before
/// redoing an interrupted schema step).
async fn drop_existing(ctx: &Ctx, list: &str, script: &str) -> Result<()> {
    let sql_path = ctx.workdir.file(script);
    let args = vec![
        "--clean".to_string(),
        "--if-exists".into(),
        format!("--use-list={}", ctx.workdir.file(list).display()),
        format!("--file={}", sql_path.display()),
        ctx.workdir.file(ARCHIVE).display().to_string(),
    ];
    tools::run(
        &ctx.tools.pg_restore,
        &args,
        &ctx.target.params,
        "pg_restore --clean (script)",
    )
    .await?;
    let script = std::fs::read_to_string(&sql_path).context("read drop script")?;
    let drops = drop_statements(&script);
    if drops.is_empty() {
        return Ok(());
    }
    let client = ctx.target.connect().await?;
    client
        .batch_execute(&format!("begin;\n{drops}\ncommit;"))
        .await
        .db()
        .context("drop existing objects on the target")?;
    info!("dropped the archive's objects ({list}) from the target where they existed");
    Ok(())
}

/// The part of a `pg_restore --clean` script before the first object is created: its session
/// settings and DROP statements (psql meta-commands left out).
pub fn drop_statements(script: &str) -> String {
    let mut out = Vec::new();
    for line in script.lines() {
        if line.starts_with("-- Name: ") {
            break;
        }
        if line.starts_with('\\') || line.starts_with("--") {
            continue;
        }
        out.push(line);
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
;
; Selected TOC Entries:
;
214; 1259 16385 TABLE public t postgres
3201; 2606 16391 CONSTRAINT public t t_pkey postgres
3202; 1259 16392 INDEX public t_v_idx postgres
3203; 1259 16399 INDEX public mv_id_idx postgres
5; 3079 16500 EXTENSION - pgcrypto
3300; 0 0 COMMENT - EXTENSION pgcrypto
3301; 0 0 INDEX ATTACH public t_1_v_idx postgres
3302; 0 0 INDEX ATTACH public t_2_v_idx postgres
";

    #[test]
    fn rewrites_by_oid() {
        let built = LeftOut {
            objects: HashSet::from([(2606, 16391), (1259, 16392)]),
            ..LeftOut::default()
        };
        let none = LeftOut::default();
        let pgcrypto = LeftOut {
            extensions: ["pgcrypto".to_string()].into(),
            ..LeftOut::default()
        };
        let (out, n) = rewrite_list(LIST, &|_| true, &built);
        assert_eq!(n, 2);
        assert!(out.contains("\n;3201; 2606 16391 CONSTRAINT"));
        assert!(out.contains("\n;3202; 1259 16392 INDEX"));
        assert!(out.contains("\n3203; 1259 16399 INDEX"));
        assert!(out.contains("\n214; 1259 16385 TABLE"));
        let (out, n) = rewrite_list(LIST, &|_| true, &pgcrypto);
        assert_eq!(n, 2);
        let (out2, n) = rewrite_list(LIST, &|id| id == 214, &none);
        assert_eq!(n, 7);
        assert!(out2.contains("\n214; 1259 16385 TABLE"));
        assert!(out2.contains("\n;3203; 1259 16399 INDEX"));
        assert!(out.contains("\n;5; 3079 16500 EXTENSION"));
        assert!(out.contains("\n;3300; 0 0 COMMENT - EXTENSION"));
        // A partition index left out takes its attachment along, and only its own.
        let attach = LeftOut {
            attachments: HashSet::from(["public t_1_v_idx ".to_string()]),
            ..LeftOut::default()
        };
        let (out, n) = rewrite_list(LIST, &|_| true, &attach);
        assert_eq!(n, 1);
        assert!(out.contains("\n;3301; 0 0 INDEX ATTACH public t_1_v_idx"));
        assert!(out.contains("\n3302; 0 0 INDEX ATTACH public t_2_v_idx"));
    }

    #[test]
    fn scripts_split_into_entries() {
        let script = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET a = 1;\nSELECT 1;\n\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.t (\n    id int\n);\n\n\n--\n-- Name: f(); Type: FUNCTION; Schema: public; Owner: -\n--\n\nCREATE FUNCTION public.f() RETURNS int AS $$\n-- not a header\nselect 1 $$;\nSET default_tablespace = '';\n\n\\unrestrict abc\n";
        let (session, entries) = split_script(script);
        assert!(session.contains("SET a = 1;") && session.contains("SELECT 1;"));
        assert!(!session.contains("restrict"));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "t; Type: TABLE; Schema: public; Owner: -");
        assert!(entries[0].sql.contains("CREATE TABLE public.t"));
        assert!(entries[1].sql.contains("-- not a header"));
        assert!(entries[1].sql.contains("SET default_tablespace"));
        assert!(!entries[1].sql.contains("unrestrict"));
    }

    #[test]
    fn post_data_phases() {
        let list = "\
;
; Selected TOC Entries:
;
3201; 2606 16391 CONSTRAINT public parted parted_pkey postgres
3202; 2606 16400 FK CONSTRAINT public small small_fk postgres
3203; 2606 16401 FK CONSTRAINT public big big_fk postgres
3204; 2606 16402 FK CONSTRAINT public parted parted_fk postgres
3205; 2620 16403 TRIGGER public t trg postgres
3206; 0 0 COMMENT - CONSTRAINT big_fk ON public.big postgres
3207; 0 16404 MATERIALIZED VIEW DATA public mv postgres
3208; 3466 16405 EVENT TRIGGER - et postgres
;3209; 2620 16406 TRIGGER public t skipped postgres
";
        let fk = |oid: u32| match oid {
            16400 => Some(1 << 20),
            16401 => Some(1 << 30),
            _ => None,
        };
        let ids = |phase| {
            let (l, n) = post_data_phase_list(list, phase, &fk);
            let ids = entry_ids(&l);
            assert_eq!(ids.len(), n);
            let mut ids: Vec<u32> = ids.into_iter().collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(PostPhase::Batched), vec![3201, 3202, 3205]);
        assert_eq!(ids(PostPhase::Parallel), vec![3203, 3204, 3207]);
        assert_eq!(ids(PostPhase::Last), vec![3206, 3208]);
    }

    #[test]
    fn drop_script_prefix() {
        let script = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET x = 1;\nDROP TABLE IF EXISTS public.t;\nSET default_tablespace = '';\n\n--\n-- Name: t; Type: TABLE\n--\nCREATE TABLE public.t ();\n";
        let d = drop_statements(script);
        assert!(d.contains("DROP TABLE IF EXISTS public.t;"));
        assert!(!d.contains("CREATE"));
        assert!(!d.contains("\\restrict"));
    }
}
