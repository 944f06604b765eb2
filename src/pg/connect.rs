//! Opening connections: libpq settings mapped onto tokio-postgres, TLS with native-tls the way
//! libpq's sslmode means it, keepalives on every connection.

use super::connstr::ConnParams;
use super::retry::{with_retries, RetryPolicy};
use super::wire::{first_value, Purpose, WireConn};
use anyhow::{bail, Context, Result};
use native_tls::{Certificate, Identity, TlsConnector};
use postgres_native_tls::MakeTlsConnector;
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::config::{ChannelBinding, SslMode, TargetSessionAttrs};
use tokio_postgres::{Client, Config};

/// Which server a connection goes to; used in every message about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Target => "target",
        })
    }
}

/// Everything needed to open connections to one server.
#[derive(Clone)]
pub struct Endpoint {
    pub side: Side,
    pub params: ConnParams,
    config: Config,
    tls: MakeTlsConnector,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.side, self.params.redacted())
    }
}

impl Endpoint {
    pub fn new(side: Side, params: ConnParams) -> Result<Endpoint> {
        let config = build_config(&params).with_context(|| format!("{side} connection string"))?;
        let tls = build_tls(&params)
            .map(MakeTlsConnector::new)
            .with_context(|| format!("{side} TLS settings"))?;
        Ok(Endpoint {
            side,
            params,
            config,
            tls,
            retry: RetryPolicy::none(),
        })
    }

    /// Retries connections that fail transiently with this policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Endpoint {
        self.retry = retry;
        self
    }

    /// Opens a connection, retrying transient failures (a server restarting, a serverless
    /// compute waking up, a connection reset).
    pub async fn connect(&self) -> Result<Client> {
        let what = format!("connect to {}", self.side);
        with_retries(&self.retry, &what, |_, _| {}, |_| self.connect_once()).await
    }

    /// The first connection of a run: retried only while the server itself answers that it
    /// is not ready (starting up, a compute waking), so that a wrong host or port fails at once.
    pub async fn connect_preflight(&self) -> Result<Client> {
        let mut attempt = 0;
        loop {
            match self.connect_once().await {
                Err(e) if attempt < self.retry.retries && server_not_ready(&e) => {
                    attempt += 1;
                    let wait = self.retry.delay(attempt);
                    tracing::warn!("{e:#}; retrying in {:.1}s", wait.as_secs_f64());
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }

    /// Opens one connection; the connection task is spawned on the runtime and ends with the
    /// client.
    async fn connect_once(&self) -> Result<Client> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(super::db_err)
            .with_context(|| format!("connect to {} ({})", self.side, self.params.redacted()))?;
        let side = self.side;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("{side} connection closed: {e}");
            }
        });
        Ok(client)
    }

    /// A connection prepared for moving data and building indexes: an empty search_path (as
    /// pg_dump and pg_restore use, so definitions read on the source name every schema and
    /// run the same on the target), and settings that make text COPY output and input agree
    /// whatever the servers' defaults are.
    pub async fn connect_for_data(&self, lc_monetary: Option<&str>) -> Result<Client> {
        let client = self.connect().await?;
        // A connection lost here is as transient as one lost connecting (db_err says so).
        client
            .batch_execute(&data_session_sql(lc_monetary))
            .await
            .map_err(super::db_err)
            .with_context(|| format!("prepare {} session", self.side))?;
        Ok(client)
    }

    /// A connection like [`Endpoint::connect_for_data`]'s, spoken with postgres-protocol's
    /// messages ([`WireConn`]) for pipelined COPY; retried as [`Endpoint::connect`] retries.
    /// With it the server process's own pid (not BackendKeyData's: a pooler or proxy sends its
    /// own), read in the settings' round trip.
    pub async fn connect_wire_for_data(
        &self,
        lc_monetary: Option<&str>,
    ) -> Result<(WireConn, i32)> {
        let what = format!("connect to {}", self.side);
        let mut conn = with_retries(
            &self.retry,
            &what,
            |_, _| {},
            |_| WireConn::connect(&self.params, Purpose::CopyTarget),
        )
        .await?;
        let sql = format!(
            "{}; {}",
            super::sql::BACKEND_PID,
            data_session_sql(lc_monetary)
        );
        let rows = conn
            .simple_query(&sql)
            .await
            .with_context(|| format!("prepare {} session", self.side))?;
        let pid = first_value(&rows)
            .and_then(|p| p.parse().ok())
            .context("read backend pid: no number in the answer")?;
        Ok((conn, pid))
    }
}

/// The settings of a session that moves data (see [`Endpoint::connect_for_data`]).
fn data_session_sql(lc_monetary: Option<&str>) -> String {
    let mut sql = String::from(
        "select pg_catalog.set_config('search_path', '', false); set extra_float_digits = 3; set datestyle = 'ISO, YMD'; set intervalstyle = 'postgres'; \
         set timezone = 'UTC'; set statement_timeout = 0; set lock_timeout = 0; \
         set idle_in_transaction_session_timeout = 0;",
    );
    if let Some(m) = lc_monetary {
        sql.push_str(&format!(" set lc_monetary = {};", super::sql::literal(m)));
    }
    sql
}

/// A connection the server itself refused for now (starting up, a compute waking).
fn server_not_ready(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<super::PgError>()
            .is_some_and(|pg| pg.transient && pg.from_server)
    })
}

fn build_config(p: &ConnParams) -> Result<Config> {
    let mut c = Config::new();
    let hosts = p.hosts();
    if hosts.is_empty() {
        bail!("no host given");
    }
    if let Some(hostaddr) = p.get("hostaddr") {
        for a in hostaddr.split(',') {
            let ip = a
                .trim()
                .parse()
                .with_context(|| format!("invalid hostaddr \"{a}\""))?;
            c.hostaddr(ip);
        }
    }
    if let Some(host) = p.get("host") {
        for h in host.split(',') {
            c.host(h.trim());
        }
    } else {
        for h in &hosts {
            c.host(h);
        }
    }
    if let Some(port) = p.get("port") {
        for part in port.split(',') {
            let port: u16 = part
                .trim()
                .parse()
                .with_context(|| format!("invalid port \"{part}\""))?;
            c.port(port);
        }
    }
    c.user(p.user());
    c.dbname(p.dbname());
    if let Some(pw) = p.password() {
        c.password(pw);
    }
    if let Some(o) = p.get("options") {
        c.options(o);
    }
    c.application_name(
        p.get("application_name")
            .or(p.get("fallback_application_name"))
            .unwrap_or("neoncopy"),
    );
    if let Some(t) = p.get("connect_timeout") {
        let secs: u64 = t
            .parse()
            .with_context(|| format!("invalid connect_timeout \"{t}\""))?;
        if secs > 0 {
            c.connect_timeout(Duration::from_secs(secs.max(2)));
        }
    } else {
        c.connect_timeout(Duration::from_secs(30));
    }
    c.keepalives(p.get("keepalives") != Some("0"));
    let idle = p
        .get("keepalives_idle")
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    c.keepalives_idle(Duration::from_secs(idle));
    if let Some(v) = p.get("keepalives_interval").and_then(|v| v.parse().ok()) {
        c.keepalives_interval(Duration::from_secs(v));
    }
    if let Some(v) = p.get("keepalives_count").and_then(|v| v.parse().ok()) {
        c.keepalives_retries(v);
    }
    let sslmode = p.get("sslmode").unwrap_or("prefer");
    c.ssl_mode(match sslmode {
        "disable" => SslMode::Disable,
        "allow" | "prefer" => SslMode::Prefer,
        "require" | "verify-ca" | "verify-full" => SslMode::Require,
        other => bail!(
            "invalid sslmode \"{other}\": use disable, allow, prefer, require, verify-ca or verify-full"
        ),
    });
    c.channel_binding(match p.get("channel_binding").unwrap_or("prefer") {
        "disable" => ChannelBinding::Disable,
        "prefer" => ChannelBinding::Prefer,
        "require" => ChannelBinding::Require,
        other => bail!("invalid channel_binding \"{other}\": use disable, prefer or require"),
    });
    match p.get("target_session_attrs").unwrap_or("any") {
        "any" => {}
        "read-write" => {
            c.target_session_attrs(TargetSessionAttrs::ReadWrite);
        }
        other => bail!("unsupported target_session_attrs \"{other}\": use any or read-write"),
    }
    Ok(c)
}

fn home_file(name: &str) -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql").join(name))
}

/// The TLS settings of a connection string as libpq means them (sslmode, sslrootcert, client
/// certificate); also used by the replication connection (pg/replication.rs).
pub(crate) fn build_tls(p: &ConnParams) -> Result<TlsConnector> {
    let sslmode = p.get("sslmode").unwrap_or("prefer");
    let mut b = TlsConnector::builder();
    let rootcert = p
        .get("sslrootcert")
        .map(PathBuf::from)
        .or_else(|| home_file("root.crt"));
    let verify = matches!(sslmode, "verify-ca" | "verify-full");
    let mut have_root = false;
    if let Some(path) = rootcert.as_ref().filter(|p| p.as_os_str() != "system") {
        if path.exists() {
            let pem = std::fs::read(path)
                .with_context(|| format!("read root certificate {}", path.display()))?;
            let certs = Certificate::stack_from_pem(&pem)
                .with_context(|| format!("parse root certificate {}", path.display()))?;
            for cert in certs {
                b.add_root_certificate(cert);
            }
            b.disable_built_in_roots(true);
            have_root = true;
        } else if verify && p.get("sslrootcert").is_some() {
            bail!("root certificate file {} does not exist", path.display());
        }
    }
    let system_roots = p.get("sslrootcert") == Some("system");
    if verify && !have_root && !system_roots {
        bail!(
            "sslmode={sslmode} needs a root certificate: set sslrootcert=/path/to/ca.pem (or sslrootcert=system)"
        );
    }
    match sslmode {
        "verify-full" => {}
        "verify-ca" => {
            b.danger_accept_invalid_hostnames(true);
        }
        // libpq: with a root certificate present, require behaves like verify-ca.
        "require" if have_root => {
            b.danger_accept_invalid_hostnames(true);
        }
        _ => {
            b.danger_accept_invalid_certs(true);
            b.danger_accept_invalid_hostnames(true);
        }
    }
    let cert = p
        .get("sslcert")
        .map(PathBuf::from)
        .or_else(|| home_file("postgresql.crt"));
    let key = p
        .get("sslkey")
        .map(PathBuf::from)
        .or_else(|| home_file("postgresql.key"));
    if let (Some(cert), Some(key)) = (cert, key) {
        if cert.exists() && key.exists() {
            let cert_pem = std::fs::read(&cert)
                .with_context(|| format!("read client certificate {}", cert.display()))?;
            let key_pem = std::fs::read(&key)
                .with_context(|| format!("read client key {}", key.display()))?;
            let id = Identity::from_pkcs8(&cert_pem, &key_pem)
                .context("load client certificate and key (the key must be PKCS#8 PEM)")?;
            b.identity(id);
        }
    }
    b.build().context("set up TLS")
}

/// The server process of a connection, to end it should the connection be lost.
pub async fn backend_pid(client: &Client) -> Result<i32> {
    Ok(client
        .query_one(super::sql::BACKEND_PID, &[])
        .await
        .map_err(super::db_err)
        .context("read backend pid")?
        .get(0))
}

/// Ends a server process left behind by a lost connection (it may still be running a
/// statement, such as a CREATE INDEX, that would collide with its retry) and waits until it is
/// gone.
pub async fn terminate_backend(client: &Client, pid: i32) -> Result<()> {
    client
        .query_one(super::sql::TERMINATE_BACKEND, &[&pid])
        .await
        .map_err(super::db_err)
        .context("end the session of the lost connection")?;
    for _ in 0..600 {
        let alive: bool = client
            .query_one(super::sql::BACKEND_ALIVE, &[&pid])
            .await
            .map_err(super::db_err)?
            .get(0);
        if !alive {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("the session (pid {pid}) of the lost connection did not end within 30s")
}

/// Ends every session an earlier run left on this server (named neoncopy-<run id>), and waits
/// until they are gone: a process killed with SIGKILL leaves its statements running.
pub async fn terminate_run(client: &Client, application_name: &str) -> Result<i64> {
    let n: i64 = client
        .query_one(super::sql::TERMINATE_RUN, &[&application_name])
        .await
        .map_err(super::db_err)
        .context("end the sessions of the interrupted run")?
        .get(0);
    for _ in 0..600 {
        let left: i64 = client
            .query_one(super::sql::RUN_SESSIONS, &[&application_name])
            .await
            .map_err(super::db_err)?
            .get(0);
        if left == 0 {
            return Ok(n);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("sessions of the interrupted run ({application_name}) did not end within 30s")
}
