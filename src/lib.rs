//! neoncopy: copy a whole PostgreSQL database to another server.
//!
//! The binary is a thin layer over this library: `cli` parses, `config` validates and builds
//! one settings value per command, the command modules (`clone`, `check`, `compare`, `list`)
//! run it, `error` says how a failure ends, `pg` talks to PostgreSQL.

pub mod catalog;
pub mod check;
pub mod cli;
pub mod clone;
pub mod compare;
pub mod config;
pub mod cutover;
pub mod error;
pub mod estimate;
pub mod filters;
pub mod fmt;
pub mod follow;
pub mod list;
pub mod pg;
pub mod pool;
pub mod preflight;
pub mod progress;
pub mod report;
pub mod signals;
pub mod split;
pub mod state;
pub mod workdir;
