//! Everything that talks to PostgreSQL: connection strings, connecting, SQL texts and
//! identifier quoting, the pg_dump/pg_restore children.

pub mod connect;
pub mod connstr;
pub mod sql;
pub mod tools;

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

/// Converts a tokio-postgres error into anyhow with the one-line description above.
pub fn db_err(e: tokio_postgres::Error) -> anyhow::Error {
    anyhow::anyhow!(describe_error(&e))
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
