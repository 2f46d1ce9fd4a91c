//! The drain deadline, as the answers still in flight see it. On SIGTERM
//! the server stops accepting and lets in-flight answers run for
//! `shutdown.drain_timeout_ms`; then it cuts the ones still going — a stream
//! ends with a closing `shutdown` error event, any other body stops — so
//! each is counted (`class="aborted"`, `kind="shutdown"`), never as `ok`.
//! One [`Drain`] per gateway, handed to whoever delivers bodies.

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The drain-deadline signal.
#[derive(Debug, Clone, Default)]
pub struct Drain(CancellationToken);

impl Drain {
    /// Cuts every answer still in flight.
    pub fn cut(&self) {
        self.0.cancel();
    }

    /// Whether the deadline came.
    pub fn is_cut(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves when the deadline comes.
    pub fn cut_owned(&self) -> WaitForCancellationFutureOwned {
        self.0.clone().cancelled_owned()
    }
}
