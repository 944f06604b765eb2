//! Database-level settings (ALTER DATABASE ... SET) and the database comment, applied to the
//! target database under its own name. pg_dump only writes them with --create, which cannot be
//! used against a target that already exists (as on Neon).

use super::Ctx;
use crate::pg::{sql, DbResultExt};
use anyhow::{Context, Result};
use tracing::{info, warn};

pub async fn run(ctx: &Ctx) -> Result<()> {
    let settings = &ctx.catalog.database_settings;
    let comment = ctx
        .catalog
        .database_comment
        .as_deref()
        .filter(|_| !ctx.cfg.no_comments);
    if settings.is_empty() && comment.is_none() {
        return Ok(());
    }
    let target = ctx.target.connect().await?;
    let db: String = target
        .query_one(sql::CURRENT_DATABASE, &[])
        .await
        .db()
        .context("read target database name")?
        .get(0);
    let mut failed = 0;
    for entry in settings {
        let Some(stmt) = sql::alter_database_set(&db, entry) else {
            continue;
        };
        // A setting the target refuses (a superuser-only parameter on a managed service, an
        // extension's parameter not loaded there) is reported and skipped: it is not data.
        if let Err(e) = target.batch_execute(&stmt).await.db() {
            failed += 1;
            warn!("could not copy database setting {entry}: {e:#}");
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
        settings.len() - failed,
        settings.len(),
        if comment.is_some() {
            " and the database comment"
        } else {
            ""
        }
    );
    Ok(())
}
