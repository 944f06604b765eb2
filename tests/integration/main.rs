//! The integration tests: one binary, so the source and target clusters are started once.
//! Every test gets fresh databases on them (see support/).

mod compare;
mod connections;
mod demo;
mod faults;
pub mod fidelity;
mod filters;
mod follow;
mod lanes;
mod objects;
mod options;
mod progress;
mod replication;
mod safety;
mod support;
mod versions;
mod wire;
