//! Everything that talks to PostgreSQL: connection strings, connecting, SQL texts and
//! identifier quoting, the pg_dump/pg_restore children.

pub mod archive;
pub mod compare_sql;
pub mod connect;
pub mod connstr;
pub mod pooler;
pub mod replication;
pub mod retry;
pub mod script;
pub mod session;
pub mod snapshot;
pub mod sql;
pub mod tools;
pub mod wire;

pub use connect::{Endpoint, Side};

/// One line describing a tokio-postgres error: the server's message, code and detail when the
/// server sent one, the I/O cause otherwise.
pub fn describe_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(d) = db.detail() {
            s.push_str(&format!("; detail: {d}"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        if let Some(w) = db.where_() {
            s.push_str(&format!("; context: {}", w.replace('\n', " / ")));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

/// A database error reduced to one line, remembering whether trying again may succeed.
#[derive(Debug)]
pub struct PgError {
    pub message: String,
    pub transient: bool,
    /// The server sent the error (rather than the connection failing).
    pub from_server: bool,
    /// The server's SQLSTATE, when it sent one.
    pub code: Option<String>,
}

impl PgError {
    /// Whether an error's chain holds an error the server sent (rather than the connection
    /// failing).
    pub fn from_server_in(e: &anyhow::Error) -> bool {
        e.chain()
            .any(|c| c.downcast_ref::<PgError>().is_some_and(|p| p.from_server))
    }

    /// The SQLSTATE of the first server error in an error's chain.
    pub fn code_of(e: &anyhow::Error) -> Option<&str> {
        e.chain()
            .find_map(|c| c.downcast_ref::<PgError>())
            .and_then(|p| p.code.as_deref())
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PgError {}

/// Whether a server's error (SQLSTATE and message) is worth retrying: the connection class,
/// the server shutting down, restarting or recovering, a serverless compute waking up, a
/// serialization race, too many connections.
pub fn transient_server_error(code: &str, message: &str) -> bool {
    let msg = message.to_ascii_lowercase();
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "53300"
        )
        || (msg.contains("compute")
            && ["wak", "start", "connect", "not ready", "suspend"]
                .iter()
                .any(|w| msg.contains(w)))
        || msg.contains("endpoint is disabled")
        || msg.contains("terminating connection")
}

/// Whether an error from the server or the connection is worth retrying: the connection was
/// lost or refused, the server is shutting down, restarting or recovering, a serverless compute
/// is waking up, or a transaction lost a serialization race.
pub fn is_transient_pg(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        return transient_server_error(db.code().code(), db.message());
    }
    if e.is_closed() {
        return true;
    }
    // Not a server error: an I/O failure or a timeout is transient, a type mismatch is not.
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        source = cause.source();
    }
    let text = e.to_string().to_ascii_lowercase();
    text.contains("timed out") || text.contains("timeout") || text.contains("connection")
}

/// Whether a failure is the target running out of room: a full disk ("No space left on
/// device") or a managed service's storage limit (Neon: "could not extend file because
/// cluster size limit (... MB) has been exceeded"). Read from the text, so that pg_restore's
/// errors count too.
pub fn out_of_storage(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}").to_ascii_lowercase();
    text.contains("no space left on device")
        || (text.contains("size limit") && text.contains("exceeded"))
}

/// Converts a tokio-postgres error into anyhow with the one-line description above.
pub fn db_err(e: tokio_postgres::Error) -> anyhow::Error {
    PgError {
        message: describe_error(&e),
        transient: is_transient_pg(&e),
        from_server: e.as_db_error().is_some(),
        code: e.as_db_error().map(|d| d.code().code().to_string()),
    }
    .into()
}

/// `.db()` on a tokio-postgres result: the error becomes a one-line anyhow error.
pub trait DbResultExt<T> {
    fn db(self) -> anyhow::Result<T>;
}

impl<T> DbResultExt<T> for Result<T, tokio_postgres::Error> {
    fn db(self) -> anyhow::Result<T> {
        self.map_err(db_err)
    }
}

/// A transient error as a lost connection makes it, for tests of the retry logic.
#[cfg(test)]
pub(crate) fn transient_error() -> anyhow::Error {
    PgError {
        message: "connection reset".into(),
        transient: true,
        from_server: false,
        code: None,
    }
    .into()
}
