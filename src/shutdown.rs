//! SIGINT and SIGTERM become one [`CancellationToken`]; the only place that touches signals.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The handlers are in place when this returns (not when a task first runs), so a signal
/// that arrives right after start-up is ours, never the default "terminate at once".
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let handlers = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    tokio::spawn(async move {
        wait_for_signal(handlers).await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal(handlers: (std::io::Result<Signal>, std::io::Result<Signal>)) {
    match handlers {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            // Without signal handlers we can still honour Ctrl-C.
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
