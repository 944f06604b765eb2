//! neoncopy: copy a whole PostgreSQL database to another server.
//!
//! The binary is a thin layer over this library: `cli` parses, `config` validates, `clone`
//! runs the pipeline, `pg` talks to PostgreSQL.

pub mod catalog;
pub mod check;
pub mod cli;
pub mod clone;
pub mod compare;
pub mod config;
pub mod estimate;
pub mod filters;
pub mod fmt;
pub mod list;
pub mod pg;
pub mod pool;
pub mod progress;
pub mod report;
pub mod signals;
pub mod split;
pub mod state;
pub mod workdir;
