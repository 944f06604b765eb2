//! Database-level settings (ALTER DATABASE ... SET, ALTER ROLE ... IN DATABASE ... SET) and the
//! database comment, applied to the target database under its own name, written as pg_dump
//! writes them with --create (which cannot be used against a target that already exists, as
//! on Neon). Applied before materialized views are refreshed, so that they see the settings
//! their source did.

use super::Ctx;
use crate::pg::{sql, DbResultExt};
use anyhow::{Context, Result};
use tracing::{info, warn};

pub async fn run(ctx: &Ctx) -> Result<()> {
    let settings = &ctx.catalog.database_settings;
    let role_settings = &ctx.catalog.role_settings;
    let comment = ctx
        .catalog
        .database_comment
        .as_deref()
        .filter(|_| !ctx.cfg.no_comments);
    if settings.is_empty() && role_settings.is_empty() && comment.is_none() {
        return Ok(());
    }
    let target = ctx.target.connect().await?;
    let db: String = target
        .query_one(sql::CURRENT_DATABASE, &[])
        .await
        .db()
        .context("read target database name")?
        .get(0);
    let mut statements: Vec<(String, String)> = settings
        .iter()
        .filter_map(|entry| Some((entry.clone(), sql::alter_database_set(&db, entry)?)))
        .collect();
    for (role, entries) in role_settings {
        statements.extend(entries.iter().filter_map(|entry| {
            let stmt = sql::alter_role_in_database_set(role, &db, entry)?;
            Some((format!("{entry} of role {role}"), stmt))
        }));
    }
    let mut failed = 0;
    for (what, stmt) in &statements {
        // A setting the target refuses (a superuser-only parameter on a managed service, an
        // extension's parameter not loaded there, a role that does not exist there) is reported
        // and skipped: it is not data.
        if let Err(e) = target.batch_execute(stmt).await.db() {
            failed += 1;
            warn!("could not copy database setting {what}: {e:#}");
        }
    }
    if let Some(c) = comment {
        target
            .batch_execute(&sql::comment_on_database(&db, c))
            .await
            .db()
            .context("set the target database's comment")?;
    }
    info!(
        "copied {} of {} database settings{}",
        statements.len() - failed,
        statements.len(),
        if comment.is_some() {
            " and the database comment"
        } else {
            ""
        }
    );
    Ok(())
}
