//! The retry layer (between `admit` and `inspect`): for each admitted
//! request it runs a [`RetryChain`] — attempts, waits, fallbacks, within
//! `max_attempts`, the shared retry budget and the deadline — and answers
//! with the [`Exchange`]: the final attempt, and the chain, which a
//! watched stream keeps for its closing count and for stream repair.

mod chain;
mod hedge;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tower::{Layer, Service};

use crate::attempt::{Attempt, AttemptRequest, Call, Exchange};
use crate::config::RetryConfig;
use crate::metrics::Metrics;
use crate::proxy::targets::Targets;

pub use chain::{retryable, RetryChain, Shared};

/// Settings and shared state of the retry layer.
#[derive(Clone)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

impl RetryLayer {
    pub fn new(retry: RetryConfig, metrics: Arc<Metrics>, targets: Arc<Targets>) -> Self {
        RetryLayer {
            shared: Arc::new(Shared::new(retry, metrics, targets)),
        }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The retrying service.
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Arc<Call>> for Retry<S>
where
    S: Service<AttemptRequest, Response = Attempt, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Exchange;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Exchange, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Arc<Call>) -> Self::Future {
        let mut chain = RetryChain::new(self.shared.clone(), self.inner.clone(), call);
        Box::pin(async move {
            let attempt = chain.run().await;
            Ok(Exchange {
                attempt,
                chain: Box::new(chain),
            })
        })
    }
}

#[cfg(test)]
mod tests;
