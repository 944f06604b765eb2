//! `neoncopy clone`: the pipeline of steps, each in its own file.

mod chunks;
mod copy;
mod data;
mod db_properties;
mod foreign_keys;
mod indexes;
mod lanes;
pub(crate) mod large_objects;
mod schedule;
pub mod schema;
pub(crate) mod sequences;

use crate::catalog::{Catalog, IndexKind};
use crate::config::{CloneConfig, SnapshotMode};
use crate::error::{self, usage, Class, Classified};
use crate::fmt;
use crate::pg::retry::with_retries;
use crate::pg::snapshot;
use crate::pg::tools::{self, PgTools};
use crate::pg::{Endpoint, Side};
use crate::preflight;
use crate::report;
use crate::state::{
    Done, Event, Live, PlannedIndex, PlannedUnit, Recorder, RunStatus, Step, Store, STATE_FILE,
};
use crate::workdir::WorkDir;
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

/// Everything a step needs, shared read-only by all of them.
pub struct Ctx {
    pub cfg: CloneConfig,
    pub source: Endpoint,
    pub target: Endpoint,
    pub workdir: WorkDir,
    pub tools: PgTools,
    /// The snapshot every source reader imports, unless the clone is not consistent.
    pub snapshot: Option<String>,
    pub catalog: Catalog,
    /// The run's record in the work directory, and what workers are doing right now.
    pub rec: Arc<Recorder>,
    /// What an interrupted run had finished, when this one resumes it (empty otherwise).
    pub done: Done,
    /// What --filters (and --skip-extensions) select.
    pub selection: crate::filters::Selection,
    /// The copy work: whole tables, and parts of the tables that are split.
    pub units: Vec<data::Unit>,
    /// Both servers speak the same binary COPY format (same major version).
    pub binary: bool,
    /// OIDs of the tables copied in parts (derived from `units`).
    pub split_tables: std::collections::HashSet<u32>,
    /// The archive's statements for what neoncopy builds, once the schema is dumped.
    pub ddl: std::sync::OnceLock<schema::ArchiveDdl>,
    /// The schema neoncopy made on the target for its record of committed parts.
    pub parts_schema: std::sync::OnceLock<String>,
    /// The publication `clone --follow` made on the source (left out of the schema copied).
    pub publication: std::sync::OnceLock<String>,
}

impl Ctx {
    /// The context of a clone whose catalog has been read.
    fn new(
        cfg: CloneConfig,
        (source, target, tools): (Endpoint, Endpoint, PgTools),
        workdir: WorkDir,
        rec: Arc<Recorder>,
        snapshot: Option<String>,
        read: SourceRead,
        done: Done,
    ) -> Ctx {
        let SourceRead {
            catalog,
            selection,
            units,
        } = read;
        Ctx {
            split_tables: units
                .iter()
                .filter(|u| u.parts > 1)
                .map(|u| catalog.tables[u.table].oid)
                .collect(),
            cfg,
            source,
            target,
            workdir,
            tools,
            snapshot,
            catalog,
            rec,
            done,
            selection,
            units,
            // The allow-listed types' binary form is the same in every version neoncopy copies
            // between (12 to 18); everything else goes as text anyway.
            binary: true,
            ddl: std::sync::OnceLock::new(),
            parts_schema: std::sync::OnceLock::new(),
            publication: std::sync::OnceLock::new(),
        }
    }

    /// Whether the table is copied in parts.
    pub fn is_split(&self, table_oid: u32) -> bool {
        self.split_tables.contains(&table_oid)
    }

    /// The schema of neoncopy's record of committed parts on the target.
    pub fn parts_schema(&self) -> Result<&str> {
        self.parts_schema
            .get()
            .map(String::as_str)
            .context("the record of committed parts has not been made yet")
    }

    /// pg_restore over the clone's archive, with its restore flags.
    pub fn restorer(&self) -> schema::Restorer<'_> {
        schema::Restorer {
            dir: &self.workdir,
            tools: &self.tools,
            target: &self.target,
            no_owner: self.cfg.no_owner,
            no_acl: self.cfg.no_acl,
            no_comments: self.cfg.no_comments,
        }
    }

    /// The archive's statements for the indexes and constraints neoncopy builds.
    pub fn ddl(&self) -> Result<&schema::ArchiveDdl> {
        self.ddl
            .get()
            .context("the schema archive has not been read yet")
    }
}

impl Ctx {
    /// A source connection ready to read data, inside the clone's snapshot when there is one.
    pub async fn source_reader(&self) -> Result<tokio_postgres::Client> {
        snapshot::reader(
            &self.source,
            &self.catalog.lc_monetary,
            self.snapshot.as_deref(),
        )
        .await
    }

    /// A target connection ready to load data.
    pub async fn target_writer(&self) -> Result<tokio_postgres::Client> {
        self.target
            .connect_for_data(Some(&self.catalog.lc_monetary))
            .await
    }

    /// A target connection for index builds: --maintenance-work-mem applies to it.
    pub async fn index_builder(&self) -> Result<tokio_postgres::Client> {
        let client = self.target_writer().await?;
        if let Some(bytes) = self.cfg.maintenance_work_mem {
            client
                .batch_execute(&format!(
                    "set maintenance_work_mem = '{}kB'",
                    (bytes / 1024).max(1024)
                ))
                .await
                .map_err(crate::pg::db_err)
                .context("set maintenance_work_mem")?;
        }
        Ok(client)
    }
}

/// What a step did that the record keeps beside its duration.
#[derive(Default)]
struct StepOutcome {
    /// Bytes moved, for the steps that move any (large objects).
    transfer: Option<u64>,
    /// Objects handled, recorded as this counter (sequences, large objects).
    count: Option<(&'static str, u64)>,
}

/// Runs the pipeline's steps the same way: a step an interrupted run finished is skipped
/// (resume), the others are recorded with their start and end, tried again after a
/// transient failure (the attempt number, 0 first, lets a step clean up after a partial
/// earlier attempt), and logged when done.
struct Steps<'a> {
    rec: &'a Recorder,
    done: &'a Done,
    resuming: bool,
    retry: &'a crate::pg::retry::RetryPolicy,
}

impl Steps<'_> {
    fn is_done(&self, step: Step) -> bool {
        self.resuming && self.done.steps.contains(&step)
    }

    /// Runs `op` unless the step is done, and again after a transient failure when `retried`
    /// (the data step retries each table itself). `Ok(None)` when it was skipped.
    async fn run<T, F, Fut>(&self, step: Step, retried: bool, mut op: F) -> Result<Option<T>>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<(T, StepOutcome)>>,
    {
        if self.is_done(step) {
            info!("{}: done before, skipped", step.label());
            return Ok(None);
        }
        let start = Instant::now();
        self.rec.send(Event::StepStart(step));
        let policy = if retried {
            *self.retry
        } else {
            crate::pg::retry::RetryPolicy::none()
        };
        let (out, outcome) = with_retries(&policy, doing(step), |_, _| {}, &mut op)
            .await
            .context(doing(step))?;
        self.rec.send(Event::StepEnd {
            step,
            transfer: outcome.transfer,
        });
        if let Some((name, value)) = outcome.count {
            self.rec.send(Event::Count { name, value });
        }
        info!(
            "{}: done in {}",
            step.label(),
            fmt::duration(start.elapsed().as_secs_f64())
        );
        Ok(Some(out))
    }
}

/// What a step does, as the log and error messages say it.
fn doing(step: Step) -> &'static str {
    match step {
        Step::Catalog => "read the source catalog",
        Step::Dump => "dump schema",
        Step::Prepare => "prepare schema",
        Step::Data => "copy data",
        Step::Sequences => "reset sequences",
        Step::LargeObjects => "copy large objects",
        Step::Finalize => "finalize schema",
    }
}

/// A step's work that has nothing to report but its duration.
async fn nothing_to_report(
    fut: impl std::future::Future<Output = Result<()>>,
) -> Result<((), StepOutcome)> {
    fut.await.map(|()| ((), StepOutcome::default()))
}

/// The settings a resumed run must share with the run it continues (no password).
fn identity_settings(cfg: &CloneConfig) -> serde_json::Value {
    serde_json::json!({
        "source": cfg.source.redacted(),
        "target": cfg.target.redacted(),
        "no_owner": cfg.no_owner,
        "no_acl": cfg.no_acl,
        "no_comments": cfg.no_comments,
        "skip_extensions": cfg.skip_extensions,
        "skip_large_objects": cfg.skip_large_objects,
        "skip_vacuum": cfg.skip_vacuum,
        "skip_db_properties": cfg.skip_db_properties,
        "filters": cfg.filters.as_ref().map(|f| f.text.clone()),
        "follow": cfg.follow.is_some(),
    })
}

/// The settings of a run as recorded in the work directory: no password.
fn recorded_settings(cfg: &CloneConfig) -> String {
    let mut v = identity_settings(cfg);
    v["table_jobs"] = cfg.table_jobs.into();
    v["index_jobs"] = cfg.index_jobs.into();
    v["restore_jobs"] = cfg.restore_jobs.into();
    v["drop_if_exists"] = cfg.drop_if_exists.into();
    // A resumed run reuses the recorded parts, whatever its own split settings.
    v["split_tables_larger_than"] = cfg.split_threshold.into();
    v["split_max_parts"] = cfg.split_max_parts.into();
    v["consistent"] = (cfg.snapshot != SnapshotMode::None).into();
    v.to_string()
}

fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:x}",
        (nanos & 0xffff_ffff_ffff) as u64,
        std::process::id()
    )
}

/// The application_name of a run's sessions.
fn session_name(run_id: &str) -> String {
    format!("neoncopy-{run_id}")
}

fn resume_hint(cfg: &CloneConfig) -> String {
    let consistent = if cfg.snapshot == SnapshotMode::None {
        ""
    } else {
        " --not-consistent"
    };
    // --resume takes every other setting from the work directory.
    let connections = if cfg.connections_from_env {
        ""
    } else {
        " (with the same --source and --target)"
    };
    format!(
        "neoncopy clone --resume{consistent} --dir {}{connections}",
        cfg.dir.display()
    )
}

/// The flag of each setting `identity_settings` records, as the user types it.
fn flag_of(key: &str) -> String {
    match key {
        "source" | "target" | "filters" => format!("--{key}"),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// A resumed run takes the recorded settings that shape the copy (the interrupted run's
/// flags), so that `clone --resume --dir D` continues whatever it was; a flag given with
/// --resume that says otherwise is refused, named as the user types it.
fn adopt_recorded_settings(recorded: &serde_json::Value, cfg: &mut CloneConfig) -> Result<()> {
    let given = identity_settings(cfg);
    let mut conflicts = Vec::new();
    for (key, value) in given.as_object().into_iter().flatten() {
        let was = recorded
            .get(key)
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        if was == *value {
            continue;
        }
        let flag = flag_of(key);
        match (key.as_str(), value) {
            // A flag left out of the resume command: the recorded value applies.
            (_, serde_json::Value::Bool(false)) => {
                set_flag(cfg, key, true);
            }
            ("filters", serde_json::Value::Null) => {
                let text = was.as_str().unwrap_or_default();
                cfg.filters = Some(crate::filters::Filters::parse(
                    std::path::Path::new("(the filters of the interrupted clone)"),
                    text,
                )?);
            }
            ("source" | "target", _) => conflicts.push(format!(
                "{flag} is {value} but the interrupted clone used {was}"
            )),
            ("filters", _) if was.is_null() => {
                conflicts.push("--filters was not given to the interrupted clone".into())
            }
            ("filters", _) => conflicts.push(
                "--filters names a file that differs from the one the interrupted clone read"
                    .into(),
            ),
            _ => conflicts.push(format!("{flag} was not given to the interrupted clone")),
        }
    }
    if !conflicts.is_empty() {
        return Err(usage(format!(
            "cannot resume: {}; drop it (--resume takes the interrupted clone's settings from --dir) \
             or start over with --restart",
            conflicts.join("; ")
        )));
    }
    Ok(())
}

fn set_flag(cfg: &mut CloneConfig, key: &str, value: bool) {
    match key {
        "no_owner" => cfg.no_owner = value,
        "no_acl" => cfg.no_acl = value,
        "no_comments" => cfg.no_comments = value,
        "skip_extensions" => cfg.skip_extensions = value,
        "skip_large_objects" => cfg.skip_large_objects = value,
        "skip_vacuum" => cfg.skip_vacuum = value,
        "skip_db_properties" => cfg.skip_db_properties = value,
        // The subscription reaches the source as --source does, unless --follow-source says
        // otherwise again (it is not recorded: it holds a password).
        "follow" if value => {
            cfg.follow = Some(crate::follow::FollowConfig {
                source_for_target: cfg.source.clone(),
                replica_identity_full: false,
            })
        }
        _ => {}
    }
}

/// What an earlier run left, when this one resumes it.
fn check_resume(store: &Store, cfg: &mut CloneConfig) -> Result<Option<Done>> {
    let previous = store.run_info()?;
    // Nothing is removed here: a run refused by the checks that follow leaves the record of
    // the earlier one as it was (a new run keeps a copy of it when it starts: RunStart).
    if !cfg.resume {
        refuse_replacing_a_migration(store, cfg)?;
    }
    if cfg.restart {
        return Ok(None);
    }
    if !cfg.resume {
        if let Some(run) = previous
            .filter(|r| r.status != RunStatus::Done.key() && r.status != RunStatus::Refused.key())
        {
            return Err(usage(format!(
                "the work directory {} holds an unfinished clone ({}): continue it with --resume, or start over with --restart",
                cfg.dir.display(),
                run.status
            )));
        }
        return Ok(None);
    }
    let Some(run) = previous else {
        return Err(usage(format!(
            "nothing to resume in {}: no clone was recorded there (drop --resume to start one)",
            cfg.dir.display()
        )));
    };
    if run.status == RunStatus::Refused.key() {
        return Err(usage(format!(
            "nothing to resume in {}: the last clone was refused before it wrote anything (drop --resume to start again)",
            cfg.dir.display()
        )));
    }
    if run.status == RunStatus::Done.key() {
        return Err(usage(format!(
            "the clone recorded in {} is already done: nothing to resume",
            cfg.dir.display()
        )));
    }
    let recorded: serde_json::Value =
        serde_json::from_str(&store.settings()?.unwrap_or_default()).unwrap_or_default();
    adopt_recorded_settings(&recorded, cfg)?;
    let was_consistent = recorded.get("consistent") != Some(&serde_json::Value::Bool(false));
    if was_consistent && cfg.snapshot == SnapshotMode::Export {
        return Err(usage(
            "cannot resume consistently: the snapshot of the interrupted clone ended with its process; \
             add --not-consistent (what is left is read as of now) or --snapshot ID",
        ));
    }
    Ok(Some(store.progress_so_far()?))
}

/// A new run would replace the record of a clone --follow whose slot, publication and
/// subscription still exist: they would be forgotten, and the slot would keep WAL on the
/// source for ever.
fn refuse_replacing_a_migration(store: &Store, cfg: &CloneConfig) -> Result<()> {
    let Some(m) = crate::follow::Migration::from_labels(|l| store.label(l))? else {
        return Ok(());
    };
    if store.label(crate::follow::CUTOVER_LABEL)?.is_some() {
        return Ok(());
    }
    Err(usage(format!(
        "the work directory {} holds a clone that follows the source (replication slot {}): \
         end it first with neoncopy cutover --dir {0} (or --abort), or use another --dir",
        cfg.dir.display(),
        m.names.slot
    )))
}

/// Runs a clone, recording it in the work directory; returns the summary to print. Stops
/// cleanly, with the state recorded, on the first SIGINT or SIGTERM.
pub async fn run(mut cfg: CloneConfig) -> Result<report::Summary> {
    let workdir = WorkDir::open(&cfg.dir)?;
    let state_path = workdir.file(STATE_FILE);
    let store = Store::open(&state_path)?;
    let done = check_resume(&store, &mut cfg)?;
    let previous_run = if done.is_some() {
        store.run_id()?
    } else {
        None
    };
    // Every session of this run, its children's too, is named after it, so that a later
    // --resume can end what this process leaves running on the servers if it is killed.
    let run_id = new_run_id();
    for params in [&mut cfg.source, &mut cfg.target] {
        params.set("fallback_application_name", &session_name(&run_id));
    }
    // The live counters start from what the run being resumed had done.
    let live = match &done {
        Some(_) => {
            let (tally, rows, indexes) = store.tally(false)?;
            Live::resuming(&tally, rows, indexes)
        }
        None => Live::default(),
    };
    let rec = Arc::new(Recorder::start(store, Arc::new(live))?);
    // Recorded once the safety checks pass: a refused run leaves the directory as it was.
    let begin = if done.is_some() {
        info!("resuming the clone recorded in {}", cfg.dir.display());
        Event::RunResume {
            run_id: run_id.clone(),
        }
    } else {
        Event::RunStart {
            run_id: run_id.clone(),
            command: "clone".into(),
            source: cfg.source.redacted(),
            target: cfg.target.redacted(),
            settings: recorded_settings(&cfg),
            snapshot: None,
            jobs: (cfg.table_jobs, cfg.index_jobs, cfg.restore_jobs),
        }
    };
    let hint = resume_hint(&cfg);
    // Set once the run is recorded (after the checks that refuse a clone without writing).
    let started = std::sync::atomic::AtomicBool::new(false);
    let result = tokio::select! {
        r = pipeline(cfg, workdir, rec.clone(), begin, previous_run, done.unwrap_or_default(), &started) => r,
        signal = crate::signals::first() => Err(Classified::new(
            Class::Interrupted,
            format!("interrupted by {signal}: work under way was rolled back"),
        ).into()),
    };
    // Whatever was in flight has been dropped with the pipeline: its transactions roll back and
    // its child processes are killed.
    let started = started.load(std::sync::atomic::Ordering::SeqCst);
    let result = result.map_err(|e| with_resume_hint(e, started, &hint));
    let (status, error) = match &result {
        Ok(()) => (RunStatus::Done, None),
        Err(e) => (
            match error::class_of(e) {
                Some(Class::Interrupted) => RunStatus::Interrupted,
                Some(Class::Refused) => RunStatus::Refused,
                _ => RunStatus::Failed,
            },
            Some(format!("{e:#}")),
        ),
    };
    // A run refused before it was recorded leaves the record of the one before untouched.
    if started {
        rec.send(Event::RunEnd { status, error });
    }
    rec.flush();
    result?;
    let summary = report::summary(&Store::open_read_only(&state_path)?)?;
    info!("{}", report::done_line(&summary));
    Ok(summary)
}

/// A failed clone's error, with how to continue it last on its line; none when there is nothing
/// to continue (refused before anything was written, or a usage error).
fn with_resume_hint(e: anyhow::Error, started: bool, hint: &str) -> anyhow::Error {
    match error::class_of(&e) {
        Some(Class::Interrupted) => error::with_hint(e, format!("continue with: {hint}")),
        Some(Class::Usage | Class::Refused) => e,
        _ if !started => e,
        _ if crate::pg::out_of_storage(&e) => error::with_hint(
            e.context("clone failed"),
            format!(
                "the target ran out of storage (a full disk, or its plan's storage limit): free \
                 space or raise the limit, then continue with: {hint}"
            ),
        ),
        _ => error::with_hint(
            e.context("clone failed"),
            format!("after fixing the cause, continue with: {hint}"),
        ),
    }
}

async fn pipeline(
    cfg: CloneConfig,
    workdir: WorkDir,
    rec: Arc<Recorder>,
    begin: Event,
    previous_run: Option<String>,
    done: Done,
    started: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let source = Endpoint::new(Side::Source, cfg.source.clone())?.with_retry(cfg.retry);
    let target = Endpoint::new(Side::Target, cfg.target.clone())?.with_retry(cfg.retry);
    info!(
        "clone from {} to {}, work directory {}",
        source.params.redacted(),
        target.params.redacted(),
        workdir.path().display()
    );
    let (tools, follow_plan) = before_the_first_write(&cfg, &source, &target, previous_run).await?;
    let run_id = record_start(&workdir, &rec, begin)?;
    started.store(true, std::sync::atomic::Ordering::SeqCst);

    // With --follow, the snapshot is the one the replication slot exports; its connection
    // stays open and idle until the snapshot is let go.
    let (mut migration, slot_conn, mode) =
        follow_start(&cfg, &source, &rec, &done, &run_id, follow_plan).await?;
    let holder = snapshot::Holder::open(&source, &mode).await?;
    let (read, dumped) =
        catalog_and_dump(&cfg, (&source, &tools), &workdir, &rec, &done, &holder).await?;
    announce(&rec, &read.catalog, &read.units);
    let mut done = done;
    if let (Some(m), true) = (&mut migration, cfg.resume) {
        follow_resume(holder.client(), &target, &rec, m, &read, &mut done).await?;
    }
    let ctx = Arc::new(Ctx::new(
        cfg,
        (source, target, tools),
        workdir,
        rec.clone(),
        holder.snapshot_id().map(str::to_string),
        read,
        done,
    ));
    let steps = Steps {
        rec: &rec,
        done: &ctx.done,
        resuming: ctx.cfg.resume,
        retry: &ctx.cfg.retry,
    };
    if let Some(m) = &migration {
        let _ = ctx.publication.set(m.names.publication.clone());
    }
    schema_steps(&ctx, &steps, dumped).await?;
    // The sequences are set once the copies are done, while the last indexes build: their
    // sessions take the places the copy workers left, and a value read then is still at least
    // the snapshot's (see sequences.rs).
    let (progress, mut copies) = tokio::sync::watch::channel(data::Progress::Copying);
    let data = async {
        let result = data_step(&ctx, &steps, &progress).await;
        if result.is_ok() {
            progress.send_replace(data::Progress::Copied);
        } else {
            progress.send_if_modified(|p| {
                let copying = *p == data::Progress::Copying;
                if copying {
                    *p = data::Progress::Failed;
                }
                copying
            });
        }
        result
    };
    let sequences = async {
        // The value is copied out: a borrow held across the step would block the data
        // step's last send.
        let copied = copies
            .wait_for(|p| *p != data::Progress::Copying)
            .await
            .map(|p| *p);
        if copied.ok() != Some(data::Progress::Copied) {
            return Ok(None);
        }
        steps
            .run(Step::Sequences, false, |_| async {
                let n = sequences::run(&ctx).await?;
                let count = Some((report::COUNT_SEQUENCES, n as u64));
                Ok((
                    (),
                    StepOutcome {
                        transfer: None,
                        count,
                    },
                ))
            })
            .await
    };
    match tokio::join!(data, sequences) {
        (Err(data), Err(seq)) => {
            tracing::warn!("{} failed too: {seq:#}", doing(Step::Sequences));
            return Err(data);
        }
        (data, sequences) => {
            data?;
            sequences?;
        }
    }
    steps
        .run(Step::LargeObjects, true, |_| async {
            let (n, transfer) = large_objects::run(&ctx).await?;
            let count = Some((report::COUNT_LARGE_OBJECTS, n as u64));
            Ok(((), StepOutcome { transfer, count }))
        })
        .await?;
    // Every read of the source is done: let the snapshot go.
    holder.close().await?;
    if let Some(conn) = slot_conn {
        conn.close().await?;
    }
    let resuming = ctx.cfg.resume;
    steps
        .run(Step::Finalize, true, |attempt| {
            nothing_to_report(schema::finalize(&ctx, resuming || attempt > 0))
        })
        .await?;
    if let Some(migration) = migration {
        follow_subscribe(&ctx, &migration).await?;
    }
    // What the whole clone did, earlier runs too, is logged from its record as the summary
    // shows it (see `run`).
    Ok(())
}

/// Everything that may refuse the clone before it writes or records anything: both ends
/// reachable, distinct, the target fit to receive, the pre-flight checks, the filters; then
/// what an interrupted run left running is ended. Returns the pg_dump/pg_restore to use.
async fn before_the_first_write(
    cfg: &CloneConfig,
    source: &Endpoint,
    target: &Endpoint,
    previous_run: Option<String>,
) -> Result<(PgTools, Option<FollowPlan>)> {
    preflight::first_failure(&preflight::pooler_names(source, target))?;
    let (src_client, tgt_client) =
        tokio::try_join!(source.connect_preflight(), target.connect_preflight())?;
    preflight::refuse_same_database(&src_client, &tgt_client).await?;
    let source_version = preflight::server_version(&src_client, Side::Source).await?;
    let target_version = preflight::server_version(&tgt_client, Side::Target).await?;
    let (source_major, target_major) = (
        (source_version / 10000) as u32,
        (target_version / 10000) as u32,
    );
    preflight::refuse_older_target(source_major, target_major)?;
    let pg_tools = tools::find(source_major, target_major)?;
    info!(
        "using {} ({}) from PostgreSQL {source_major} to {target_major}: {}",
        pg_tools.pg_dump.display(),
        pg_tools.version,
        pg_tools.reason
    );
    if !cfg.resume {
        preflight::refuse_non_empty_target(&tgt_client, cfg.drop_if_exists).await?;
    }
    let opts = cfg.check_options();
    // What --filters selects, as of now (the clone computes it again in its snapshot).
    let selection = match &opts.filters {
        Some(f) => Some(
            crate::filters::Selection::compute(&src_client, Some(f), opts.skip_extensions)
                .await
                .context("apply --filters")?,
        ),
        None => None,
    };
    let checks = preflight::on_connections(&src_client, &tgt_client, &opts, selection.as_ref())
        .await
        .context("run pre-flight checks")?;
    preflight::first_failure(&checks)?;
    if let Some(f) = &cfg.filters {
        // An include-only entry that names nothing is a typo: refused before anything is
        // written or recorded (its warnings come with the selection, later).
        f.validate(&src_client).await?;
    }
    let follow_plan = match (&cfg.follow, cfg.resume) {
        (Some(follow), false) => {
            Some(follow_preflight(cfg, follow, &src_client, &tgt_client, source_version).await?)
        }
        _ => None,
    };
    if let Some(old) = previous_run {
        // A killed run's statements may still be running on the servers (a CREATE INDEX, an
        // orphaned pg_restore): end them before redoing their work.
        let name = session_name(&old);
        let (a, b) = tokio::try_join!(
            crate::pg::connect::terminate_run(&src_client, &name),
            crate::pg::connect::terminate_run(&tgt_client, &name)
        )?;
        if a + b > 0 {
            info!("ended {} sessions left by the interrupted run", a + b);
        }
    }
    Ok((pg_tools, follow_plan))
}

/// What `--follow` will make on the source, decided before anything is written.
struct FollowPlan {
    /// The relations of the publication (partitions through their roots).
    relations: Vec<String>,
    /// Tables without a key that get REPLICA IDENTITY FULL (`--replica-identity-full`).
    identity_full: Vec<String>,
    source_version: i32,
}

/// The pre-flight checks of `--follow`, on the tables the filters select.
async fn follow_preflight(
    cfg: &CloneConfig,
    follow: &crate::follow::FollowConfig,
    src: &tokio_postgres::Client,
    tgt: &tokio_postgres::Client,
    source_version: i32,
) -> Result<FollowPlan> {
    let selection =
        crate::filters::Selection::compute(src, cfg.filters.as_ref(), cfg.skip_extensions)
            .await
            .context("apply --filters")?;
    let mut catalog = Catalog::read(src, false).await?;
    catalog.apply(&selection, cfg.skip_extensions);
    let oids: Vec<u32> = catalog.tables.iter().map(|t| t.oid).collect();
    let checks = crate::follow::checks(src, tgt, &oids, follow).await?;
    preflight::first_failure(&checks)?;
    let identity_full = if follow.replica_identity_full {
        crate::follow::keyless(src, &oids)
            .await?
            .into_iter()
            .map(|t| t.qualified)
            .collect()
    } else {
        Vec::new()
    };
    Ok(FollowPlan {
        relations: crate::follow::relations_to_publish(src, &oids, source_version).await?,
        identity_full,
        source_version,
    })
}

/// `--follow` on a fresh run: records the names first (so that `cutover --abort` finds what
/// exists whatever happens next), changes the replica identities asked for, creates the
/// publication, then the slot, whose exported snapshot becomes the clone's. On a resume:
/// the names recorded before, and the snapshot the command line gives. Without --follow:
/// nothing, and the snapshot as configured.
async fn follow_start(
    cfg: &CloneConfig,
    source: &Endpoint,
    rec: &Recorder,
    done: &Done,
    run_id: &str,
    plan: Option<FollowPlan>,
) -> Result<(
    Option<crate::follow::Migration>,
    Option<crate::pg::replication::ReplicationConn>,
    SnapshotMode,
)> {
    let Some(plan) = plan else {
        let recorded = done.follow.clone().filter(|_| cfg.follow.is_some());
        return Ok((recorded, None, cfg.snapshot.clone()));
    };
    let names = crate::follow::Names::of_run(run_id);
    for (label, value) in [
        (crate::follow::PUBLICATION_LABEL, names.publication.clone()),
        (crate::follow::SLOT_LABEL, names.slot.clone()),
        (
            crate::follow::SUBSCRIPTION_LABEL,
            names.subscription.clone(),
        ),
        (
            crate::follow::IDENTITY_LABEL,
            serde_json::to_string(&plan.identity_full)?,
        ),
    ] {
        rec.send(Event::Label { name: label, value });
    }
    rec.flush();
    let client = source.connect().await?;
    crate::follow::prepare_source(
        &client,
        &names,
        &plan.relations,
        &plan.identity_full,
        plan.source_version,
    )
    .await?;
    drop(client);
    let mut conn = crate::pg::replication::ReplicationConn::connect(&source.params).await?;
    let slot = conn.create_slot(&names.slot, plan.source_version).await?;
    info!(
        "created the publication {} ({} relations) and the replication slot {} at {} on the \
         source; the clone reads in its snapshot",
        names.publication,
        plan.relations.len(),
        names.slot,
        slot.consistent_point
    );
    let migration = crate::follow::Migration {
        names,
        identity_full: plan.identity_full,
        resync: Vec::new(),
    };
    Ok((
        Some(migration),
        Some(conn),
        SnapshotMode::Given(slot.snapshot_name),
    ))
}

/// Records that the run starts (or resumes), keeping the record of an earlier run it replaces;
/// returns the run's id.
fn record_start(workdir: &WorkDir, rec: &Recorder, begin: Event) -> Result<String> {
    if matches!(begin, Event::RunStart { .. }) {
        // The record of the run before is kept, in earlier-runs/, as this one replaces it.
        if let Some(kept) =
            crate::state::keep_earlier_record(&workdir.file(STATE_FILE), workdir.path())?
        {
            info!(
                "the record of the earlier clone is kept in {}",
                kept.display()
            );
        }
    }
    let run_id = match &begin {
        Event::RunStart { run_id, .. } | Event::RunResume { run_id } => run_id.clone(),
        _ => String::new(),
    };
    rec.send(begin);
    Ok(run_id)
}

/// A resumed clone --follow whose data step had not ended: its unfinished tables go to the
/// subscription (see follow_hand_over_unfinished).
async fn follow_resume(
    source: &tokio_postgres::Client,
    target: &Endpoint,
    rec: &Recorder,
    migration: &mut crate::follow::Migration,
    read: &SourceRead,
    done: &mut Done,
) -> Result<()> {
    if done.steps.contains(&Step::Data) {
        return Ok(());
    }
    let target_client = target.connect().await?;
    migration.resync =
        follow_hand_over_unfinished(source, &target_client, rec, migration, read, done).await?;
    Ok(())
}

/// A clone --follow resumed before its data was all copied: the tables it had copied are
/// consistent with the slot (copied in its snapshot), the others are not, and the snapshot is
/// gone. Those are emptied on the target and left to the subscription, whose own table
/// synchronization copies each from a snapshot of its own and joins the stream at the right
/// position (see follow::subscribe): nothing lost, nothing applied twice. Their indexes are
/// built as for the others; the data step copies nothing for them.
async fn follow_hand_over_unfinished(
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
    rec: &Recorder,
    migration: &crate::follow::Migration,
    read: &SourceRead,
    done: &mut Done,
) -> Result<Vec<String>> {
    if !crate::follow::slot_exists(source, &migration.names.slot).await? {
        return Err(usage(format!(
            "cannot resume: the replication slot {} of this clone --follow does not exist on the \
             source (the clone stopped before it was made, or it was dropped); abandon it with \
             neoncopy cutover --abort, then start again with --restart",
            migration.names.slot
        )));
    }
    let unfinished: Vec<u32> = read
        .units
        .iter()
        .map(|u| read.catalog.tables[u.table].oid)
        .filter(|oid| {
            read.units
                .iter()
                .filter(|u| read.catalog.tables[u.table].oid == *oid)
                .any(|u| !done.units.contains(&(*oid, u.part)))
        })
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .collect();
    let mut resync = migration.resync.clone();
    let all: Vec<u32> = read.catalog.tables.iter().map(|t| t.oid).collect();
    let published = crate::follow::published_relation_of(source, &all).await?;
    for oid in &unfinished {
        if let Some(rel) = published.get(oid) {
            if !resync.contains(rel) {
                resync.push(rel.clone());
            }
        }
    }
    if resync.is_empty() {
        return Ok(resync);
    }
    // Emptied once the target has the tables (a prepare redone makes them empty anyway).
    if done.steps.contains(&Step::Prepare) {
        crate::follow::empty_on_target(target, &resync).await?;
    }
    rec.send(Event::Label {
        name: crate::follow::RESYNC_LABEL,
        value: serde_json::to_string(&resync)?,
    });
    for u in &read.units {
        let oid = read.catalog.tables[u.table].oid;
        let handed = published.get(&oid).is_some_and(|r| resync.contains(r));
        if handed && done.units.insert((oid, u.part)) {
            rec.send(Event::UnitDone {
                table_oid: oid,
                part: u.part,
                rows: 0,
                bytes: 0,
                secs: 0.0,
            });
        }
    }
    rec.flush();
    info!(
        "resuming a clone --follow: {} relation(s) not copied in the original snapshot are \
         emptied and left to the subscription's table synchronization: {}",
        resync.len(),
        resync.join(", ")
    );
    Ok(resync)
}

/// After the clone: the subscription on the target, which streams what the source committed
/// after the snapshot.
async fn follow_subscribe(ctx: &Ctx, migration: &crate::follow::Migration) -> Result<()> {
    let Some(follow) = &ctx.cfg.follow else {
        return Ok(());
    };
    let names = &migration.names;
    let target = ctx.target.connect().await?;
    crate::follow::match_identity_on_target(&target, &migration.identity_full).await?;
    let source = ctx.source.connect().await?;
    crate::follow::subscribe(
        &source,
        &target,
        names,
        &follow.source_for_target,
        &migration.resync,
    )
    .await
    .context("follow the source")?;
    ctx.rec.send(Event::Label {
        name: crate::follow::FOLLOWING_LABEL,
        value: crate::state::now().to_string(),
    });
    let dir = ctx.cfg.dir.display();
    info!(
        "the target follows the source: subscription {} streams every change committed after \
         the snapshot. Watch it with: neoncopy list progress --dir {dir}; when writes to the \
         source have stopped: neoncopy cutover --dir {dir}",
        names.subscription
    );
    Ok(())
}

/// What the catalog step reads in the snapshot.
struct SourceRead {
    catalog: Catalog,
    /// What --filters (and --skip-extensions) select.
    selection: crate::filters::Selection,
    units: Vec<data::Unit>,
}

/// The catalog and dump steps, side by side in the snapshot: pg_dump starts as soon as the
/// filters' selection is known, while the catalog is read (each has its own connection).
/// Returns what was read, and whether pg_dump ran (its restore lists are still to write).
async fn catalog_and_dump(
    cfg: &CloneConfig,
    (source, tools): (&Endpoint, &PgTools),
    workdir: &WorkDir,
    rec: &Recorder,
    done: &Done,
    holder: &snapshot::Holder,
) -> Result<(SourceRead, bool)> {
    // Read again on a resume (the step is never skipped: nothing else knows the tables).
    let fresh = Steps {
        rec,
        done,
        resuming: false,
        retry: &cfg.retry,
    };
    let fresh = &fresh;
    // A dump recorded done whose files are gone is made again.
    let dump_done =
        cfg.resume && done.steps.contains(&Step::Dump) && schema::archive_ready(workdir);
    // pg_dump's filter arguments, once the catalog step has them; the sender is dropped with
    // the catalog step, so a dump never waits for a catalog that failed.
    let (args_tx, args_rx) = tokio::sync::watch::channel(None::<DumpArgs>);
    let catalog = async move {
        let args_tx = args_tx;
        fresh
            .run(Step::Catalog, false, |_| async {
                let dump = (tools.major, &args_tx);
                let read = read_catalog(holder.client(), cfg, done, dump).await?;
                Ok((read, StepOutcome::default()))
            })
            .await?
            .context("the catalog was not read")
    };
    let dump = async {
        if dump_done {
            info!("{}: done before, skipped", Step::Dump.label());
            return Ok(false);
        }
        fresh
            .run(Step::Dump, true, |_| {
                let mut args_rx = args_rx.clone();
                async move {
                    let (scope, args) = args_rx
                        .wait_for(Option::is_some)
                        .await
                        .map_err(|_| anyhow::anyhow!("the filters were not applied"))?
                        .clone()
                        .context("the filters were not applied")?;
                    // Without a snapshot pg_dump may see a materialized view the catalog
                    // step did not.
                    let scope = match holder.snapshot_id() {
                        Some(_) => scope,
                        None => schema::DumpScope::Sections,
                    };
                    schema::pg_dump(
                        workdir,
                        tools,
                        source,
                        (scope, &args),
                        holder.snapshot_id(),
                        cfg.skip_large_objects,
                    )
                    .await?;
                    Ok(((), StepOutcome::default()))
                }
            })
            .await?;
        Ok(true)
    };
    tokio::try_join!(catalog, dump)
}

/// What pg_dump is asked for: the scope of its schema and the filters' arguments.
type DumpArgs = (schema::DumpScope, Vec<String>);

/// The catalog step: what --filters selects and the scope of the schema (handed to pg_dump
/// as soon as they are known), the source catalog with the filters applied, and the copy
/// units, all read in the snapshot.
async fn read_catalog(
    client: &tokio_postgres::Client,
    cfg: &CloneConfig,
    done: &Done,
    (pg_dump_major, pg_dump_args): (u32, &tokio::sync::watch::Sender<Option<DumpArgs>>),
) -> Result<SourceRead> {
    let selection =
        crate::filters::Selection::compute(client, cfg.filters.as_ref(), cfg.skip_extensions)
            .await
            .context("apply --filters")?;
    let scope =
        schema::DumpScope::of_source(client, !cfg.skip_large_objects, pg_dump_major).await?;
    pg_dump_args.send_replace(Some((scope, selection.pg_dump_args())));
    let mut catalog = Catalog::read(client, !cfg.skip_large_objects).await?;
    catalog.apply(&selection, cfg.skip_extensions);
    catalog.load_through_roots();
    let units = plan_units(client, &catalog, cfg, done).await?;
    for w in &selection.warnings {
        tracing::warn!("{w}");
    }
    Ok(SourceRead {
        catalog,
        selection,
        units,
    })
}

/// Logs what the source holds and records the plan; the live counters start from it.
fn announce(rec: &Recorder, catalog: &Catalog, units: &[data::Unit]) {
    info!(
        "source has {} tables ({} on disk), {} indexes and constraints, {} sequences, {} large objects",
        catalog.tables.len(),
        fmt::bytes(catalog.tables.iter().map(|t| t.bytes.max(0) as u64).sum()),
        catalog.indexes.len(),
        catalog.sequences.len(),
        catalog.large_objects.len()
    );
    rec.send(plan(catalog, units));
    rec.live.total_disk.store(
        units.iter().map(|u| u.est_bytes.max(0) as u64).sum(),
        std::sync::atomic::Ordering::Relaxed,
    );
    rec.live.index_total.store(
        catalog.indexes.iter().map(|i| i.bytes).sum(),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// The restore lists of a new archive, the prepare step, and reading the archive's statements
/// for what neoncopy builds.
async fn schema_steps(ctx: &Ctx, steps: &Steps<'_>, dumped: bool) -> Result<()> {
    let resuming = ctx.cfg.resume;
    if dumped {
        schema::write_restore_lists(ctx).context(doing(Step::Dump))?;
    }
    // The archive's statements for what neoncopy builds.
    let ddl = with_retries(
        &ctx.cfg.retry,
        "read the schema archive",
        |_, _| {},
        |_| schema::load_ddl(ctx),
    )
    .await?;
    let _ = ctx.ddl.set(ddl);
    // Before the first write, whatever the target refuses of the schema is found: pre-data
    // is created in one transaction with the rest rehearsed inside it (see
    // prepare_rehearsed). A pre-data restore cut short is redone from scratch: no data has
    // been loaded yet, so dropping what it created loses nothing.
    let left = schema::LeftOut::of_run(ctx);
    let built: std::collections::HashSet<(u32, u32)> = ctx
        .catalog
        .indexes
        .iter()
        .map(|i| i.archive_oid())
        .collect();
    steps
        .run(Step::Prepare, true, |attempt| {
            nothing_to_report(schema::prepare_rehearsed(
                ctx,
                &left,
                &built,
                resuming,
                resuming || attempt > 0,
            ))
        })
        .await?;
    Ok(())
}

/// The data step, with the progress bars on a terminal; then the record of committed parts on
/// the target has served.
async fn data_step(
    ctx: &Arc<Ctx>,
    steps: &Steps<'_>,
    progress: &tokio::sync::watch::Sender<data::Progress>,
) -> Result<()> {
    let bars = ctx.cfg.show_bars.then(|| {
        crate::progress::DataBars::start(ctx.rec.live.clone(), ctx.catalog.indexes.len() as u64)
    });
    let data = steps
        .run(Step::Data, false, |_| {
            nothing_to_report(data::run(ctx, progress))
        })
        .await;
    drop(bars);
    data?;
    // Every unit's state is on disk before anything that depends on it.
    ctx.rec.flush();
    drop_parts_schema(ctx).await
}

/// Drops neoncopy's schema of committed parts on the target once the data is in: only what
/// neoncopy made, without CASCADE (anything else in it stays, with a warning).
async fn drop_parts_schema(ctx: &Ctx) -> Result<()> {
    let Some(name) = ctx.parts_schema.get().or(ctx.done.parts_schema.as_ref()) else {
        return Ok(());
    };
    let client = ctx.target.connect().await?;
    let ours = client
        .query_one(crate::pg::sql::PARTS_SCHEMA_STATE, &[name])
        .await
        .map_err(crate::pg::db_err)?
        .get::<_, bool>(1);
    let dropped = if ours {
        client
            .batch_execute(&crate::pg::sql::drop_parts_schema(name))
            .await
            .map_err(crate::pg::db_err)
    } else {
        Ok(())
    };
    if let Err(e) = dropped {
        tracing::warn!(
            "could not drop neoncopy's schema {name} of committed parts on the target: {e:#}"
        );
    }
    Ok(())
}

/// The copy units: tables larger than --split-tables-larger-than are cut into parts (read in
/// the snapshot); a resumed run keeps the parts recorded by the run it continues, so that a
/// part done before means the same rows now.
async fn plan_units(
    client: &tokio_postgres::Client,
    catalog: &Catalog,
    cfg: &CloneConfig,
    done: &Done,
) -> Result<Vec<data::Unit>> {
    let mut units = Vec::new();
    for (i, t) in catalog.tables.iter().enumerate() {
        let recorded = done.plans.get(&t.oid).filter(|p| !p.is_empty());
        let parts: Vec<(u32, u32, Option<String>)> = match recorded {
            Some(p) => p.clone(),
            None => crate::split::plan_table(client, t, cfg.split_threshold, cfg.split_max_parts)
                .await?
                .into_iter()
                .map(|p| (p.part, p.parts, p.condition))
                .collect(),
        };
        let n = parts.len().max(1) as i64;
        for (part, count, condition) in parts {
            units.push(data::Unit {
                table: i,
                part,
                parts: count,
                condition,
                est_bytes: t.bytes / n,
                est_rows: t.estimated_rows / n,
            });
        }
    }
    let whole: Vec<String> = catalog
        .tables
        .iter()
        .filter(|t| {
            t.read_by_matview
                && crate::split::part_count(t.bytes, cfg.split_threshold, cfg.split_max_parts) > 1
        })
        .map(|t| t.display())
        .collect();
    if !whole.is_empty() {
        info!(
            "not split, so that the materialized views reading them refresh as on the source: {}",
            whole.join(", ")
        );
    }
    let split = units.iter().filter(|u| u.parts > 1 && u.part == 1).count();
    if split > 0 {
        info!(
            "{split} table(s) larger than {} split into {} parts",
            fmt::bytes(cfg.split_threshold),
            units.iter().filter(|u| u.parts > 1).count()
        );
    }
    Ok(units)
}

/// The units and indexes of the run, as planned.
fn plan(catalog: &Catalog, units: &[data::Unit]) -> Event {
    let units = units
        .iter()
        .map(|u| {
            let t = &catalog.tables[u.table];
            PlannedUnit {
                table_oid: t.oid,
                part: u.part,
                parts: u.parts,
                schema: t.schema.clone(),
                table: t.name.clone(),
                est_bytes: u.est_bytes,
                est_rows: u.est_rows,
                range: u.condition.clone(),
            }
        })
        .collect();
    let indexes = catalog
        .indexes
        .iter()
        .map(|i| PlannedIndex {
            oid: i.oid,
            table_oid: i.table_oid,
            schema: i.schema.clone(),
            name: i.name.clone(),
            kind: match &i.kind {
                IndexKind::Plain => "index",
                IndexKind::Constraint { contype: 'p', .. } => "primary key",
                IndexKind::Constraint { contype: 'x', .. } => "exclusion",
                IndexKind::Constraint { .. } => "unique",
            },
            est_bytes: i.bytes as i64,
        })
        .collect();
    Event::Plan { units, indexes }
}
