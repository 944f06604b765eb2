//! Large objects. Their metadata (OID, owner, privileges, comment) comes from pg_dump's
//! archive when it holds it (pg_dump before 17 puts it in pre-data); pg_dump 17 and later
//! put it in the data section, which neoncopy does not dump, and `pg_dump --schema` leaves
//! large objects out altogether: those neoncopy creates itself, with the same OID and, as
//! the flags say, owner, privileges and comment. Their contents are read in the snapshot in
//! chunks and written with lo_put, several objects in flight on one pair of connections.

use super::Ctx;
use crate::pg::{sql, DbResultExt};
use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use tokio_postgres::Client;

const CHUNK: i32 = 1024 * 1024;
const IN_FLIGHT: usize = 8;
/// Large objects created in one transaction.
const CREATE_BATCH: usize = 1000;

/// The large objects to copy and what of their metadata to carry.
pub struct Job<'a> {
    pub los: &'a [u32],
    pub no_owner: bool,
    pub no_acl: bool,
    pub no_comments: bool,
    /// Objects may exist on the target with other contents (a cutover copies them again):
    /// each is cut to the source's length, and the target's objects the source no longer
    /// has are removed (the target's objects all came from the clone).
    pub again: bool,
}

/// The clone's step: returns how many objects and bytes were copied.
pub async fn run(ctx: &Ctx) -> Result<(usize, Option<u64>)> {
    if ctx.catalog.large_objects.is_empty() {
        return Ok((0, Some(0)));
    }
    let (source, target) = tokio::try_join!(ctx.source_reader(), ctx.target.connect())?;
    let job = Job {
        los: &ctx.catalog.large_objects,
        no_owner: ctx.cfg.no_owner,
        no_acl: ctx.cfg.no_acl,
        no_comments: ctx.cfg.no_comments,
        again: false,
    };
    copy(&job, &source, &target).await
}

/// Creates the objects missing on the target and copies every object's contents.
pub async fn copy(job: &Job<'_>, source: &Client, target: &Client) -> Result<(usize, Option<u64>)> {
    let los = job.los;
    if job.again {
        let all: Vec<i64> = los.iter().map(|o| *o as i64).collect();
        target
            .execute(sql::LO_UNLINK_OTHERS, &[&all])
            .await
            .db()
            .context("remove the large objects the source no longer has from the target")?;
    }
    if los.is_empty() {
        return Ok((0, Some(0)));
    }
    create_missing(job, source, target).await?;
    let read = source.prepare(sql::LO_READ).await.db()?;
    let write = target.prepare(sql::LO_WRITE).await.db()?;
    let cut = target.prepare(sql::LO_CUT).await.db()?;
    let sizes = futures::stream::iter(los.iter().copied())
        .map(|oid| {
            let (source, target, read, write) = (source, target, &read, &write);
            let cut = job.again.then_some(&cut);
            async move {
                let len = copy_one(source, target, read, write, oid).await;
                if let (Ok(len), Some(cut)) = (&len, cut) {
                    target
                        .execute(cut, &[&(oid as i64), &(*len as i64)])
                        .await
                        .db()?;
                }
                len.with_context(|| format!("copy large object {oid}"))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<u64>>()
        .await?;
    let bytes: u64 = sizes.iter().sum();
    tracing::info!(
        "copied {} large objects ({})",
        los.len(),
        crate::fmt::bytes(bytes)
    );
    Ok((los.len(), Some(bytes)))
}

/// Creates the large objects the archive did not, each batch with its metadata in one
/// transaction (so one that exists is whole).
async fn create_missing(job: &Job<'_>, source: &Client, target: &Client) -> Result<()> {
    let all: Vec<i64> = job.los.iter().map(|o| *o as i64).collect();
    let existing: std::collections::HashSet<i64> = target
        .query(sql::EXISTING_LARGE_OBJECTS, &[&all])
        .await
        .db()
        .context("look for large objects on the target")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<i64> = all.into_iter().filter(|o| !existing.contains(o)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    for chunk in missing.chunks(CREATE_BATCH) {
        let rows = source
            .query(sql::LARGE_OBJECT_METADATA, &[&chunk])
            .await
            .db()
            .context("read large objects' owners, privileges and comments on the source")?;
        let mut batch = String::from("begin;\n");
        for r in rows {
            let m = Metadata {
                oid: r.get::<_, i64>(0) as u32,
                owner: r.get(1),
                comment: r.get(2),
                acl_set: r.get(3),
                privileges: r.get(4),
            };
            batch.push_str(&m.statements(job));
        }
        batch.push_str("commit;\n");
        target
            .batch_execute(&batch)
            .await
            .db()
            .context("create large objects on the target")?;
    }
    tracing::info!(
        "created {} large objects the schema archive does not hold",
        missing.len()
    );
    Ok(())
}

/// What pg_dump carries of a large object besides its contents.
struct Metadata {
    oid: u32,
    owner: String,
    comment: Option<String>,
    acl_set: bool,
    /// `PRIVILEGE grantee [with grant option]`, grantee quoted.
    privileges: Vec<String>,
}

impl Metadata {
    /// The statements pg_restore would run for the object, with the clone's flags: create it
    /// with its OID; its owner; its privileges (when set: every default revoked from the
    /// owner, then what was granted); its comment.
    fn statements(&self, cfg: &Job<'_>) -> String {
        let oid = self.oid;
        let mut s = format!("select pg_catalog.lo_create({oid});\n");
        if !cfg.no_owner {
            s.push_str(&format!(
                "alter large object {oid} owner to {};\n",
                sql::ident(&self.owner)
            ));
        }
        if !cfg.no_acl && self.acl_set {
            s.push_str(&format!(
                "revoke all on large object {oid} from {};\n",
                sql::ident(&self.owner)
            ));
            for p in &self.privileges {
                let (privilege, rest) = p.split_once(' ').unwrap_or((p, ""));
                let (grantee, option) = match rest.strip_suffix(" with grant option") {
                    Some(g) => (g, " with grant option"),
                    None => (rest, ""),
                };
                s.push_str(&format!(
                    "grant {privilege} on large object {oid} to {grantee}{option};\n"
                ));
            }
        }
        if let (Some(c), false) = (&self.comment, cfg.no_comments) {
            s.push_str(&format!(
                "comment on large object {oid} is {};\n",
                sql::literal(c)
            ));
        }
        s
    }
}

async fn copy_one(
    source: &Client,
    target: &Client,
    read: &tokio_postgres::Statement,
    write: &tokio_postgres::Statement,
    oid: u32,
) -> Result<u64> {
    let oid = oid as i64;
    let mut offset: i64 = 0;
    loop {
        let data: Vec<u8> = source
            .query_one(read, &[&oid, &offset, &CHUNK])
            .await
            .db()
            .context("read from source")?
            .get(0);
        let len = data.len() as i64;
        if len > 0 {
            target
                .query_one(write, &[&oid, &offset, &data])
                .await
                .db()
                .context("write to target")?;
        }
        offset += len;
        if len < CHUNK as i64 {
            return Ok(offset as u64);
        }
    }
}
