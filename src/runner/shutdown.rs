//! Shutdown: one [`Shutdown`] handle, cloned into every place that must stop, over a
//! cancellation token; SIGTERM or SIGINT fires it, a second signal ends the process at once.

use tokio_util::sync::{CancellationToken, DropGuard};

/// Tells whether shutdown has started, and waits for it.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    /// A handle that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts shutting down.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has started.
    pub async fn wait(&self) {
        self.token.cancelled().await
    }

    /// A handle that fires with this one, and can also be fired alone (one task's stop).
    pub fn child(&self) -> Self {
        Self {
            token: self.token.child_token(),
        }
    }

    /// Cancels `token` when this fires, until the returned guard is dropped (which cancels
    /// `token` too, ending the link): for a token that has another parent already.
    pub(crate) fn cancels(&self, token: &CancellationToken) -> DropGuard {
        let (this, linked) = (self.token.clone(), token.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = this.cancelled() => linked.cancel(),
                _ = linked.cancelled() => {}
            }
        });
        token.clone().drop_guard()
    }

    /// The token cancelled at shutdown, as handed to tasks.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Listens for SIGTERM and SIGINT: the first triggers this shutdown, the second exits the
    /// process at once with status 130 (the grace period is for orderly stops; an operator who
    /// asks twice wants it gone).
    pub fn listen_for_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = self.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(
                signal = name,
                "shutting down; send the signal again to stop at once"
            );
            shutdown.trigger();
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::warn!(
                signal = name,
                "second signal: exiting now without waiting for tasks"
            );
            std::process::exit(130);
        });
        Ok(())
    }
}
