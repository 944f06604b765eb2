//! Ctrl-C and SIGTERM: the first asks the run to stop cleanly, a second one exits at once.

use tokio::signal::unix::{signal, SignalKind};

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
        eprintln!("neoncopy: stopped at once; in-flight work is rolled back by the servers");
        std::process::exit(130);
    });
    name
}
