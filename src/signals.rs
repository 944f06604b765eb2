//! Ctrl-C and SIGTERM: the first asks the run to stop cleanly, a second one exits at once,
//! ending the pg_dump and pg_restore children first (an exit runs no destructors, so their
//! kill-on-drop would not).

use std::collections::HashSet;
use std::sync::Mutex;
use tokio::signal::unix::{signal, SignalKind};

/// The child processes running now.
static CHILDREN: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
const SIGTERM: i32 = 15;

/// A running child process, known until this is dropped.
pub struct Child(u32);

impl Child {
    pub fn register(pid: u32) -> Child {
        let mut all = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        all.get_or_insert_with(HashSet::new).insert(pid);
        Child(pid)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let mut all = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(set) = all.as_mut() {
            set.remove(&self.0);
        }
    }
}

/// Sends SIGTERM to every child still running; returns how many.
fn end_children() -> usize {
    let all = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let pids: Vec<u32> = all.iter().flatten().copied().collect();
    for pid in &pids {
        // SAFETY: kill(2) with a pid this process started and has not reaped yet (the
        // registration ends when the child is waited for).
        unsafe {
            kill(*pid as i32, SIGTERM);
        }
    }
    pids.len()
}

/// Resolves when the first SIGINT or SIGTERM arrives, and from then on makes a second one end
/// the process immediately.
pub async fn first() -> &'static str {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handling the default action (exit) applies: wait forever here.
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    tracing::warn!("{name} received: stopping; press Ctrl-C again to exit at once");
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let ended = end_children();
        let children = if ended > 0 {
            format!(", {ended} pg_dump/pg_restore process(es) ended")
        } else {
            String::new()
        };
        eprintln!(
            "neoncopy: stopped at once{children}; in-flight work is rolled back by the servers"
        );
        std::process::exit(130);
    });
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_children_are_ended() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("start sleep");
        let registered = Child::register(child.id());
        assert!(end_children() >= 1);
        let status = child.wait().expect("wait for sleep");
        assert!(!status.success(), "sleep was not ended: {status:?}");
        drop(registered);
        let mut other = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .expect("start sleep");
        // Not registered: left alone.
        let before = CHILDREN
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|s| s.contains(&other.id()));
        assert!(!before);
        assert!(other.wait().unwrap().success());
    }
}
