//! [`Otel`]: the tracer provider, when traces are on — the OTLP/HTTP
//! (protobuf) span exporter behind a batch processor that runs on the
//! tokio runtime, the sampler (parent-based, `otel.sample_ratio` for new
//! traces), the `service.name` resource — and its flush and shutdown.
//!
//! Exports go out through the gateway's own HTTP stack (hyper-util, rustls
//! with ring, the egress rules: `HTTPS_PROXY` / `NO_PROXY` apply), so
//! traces add no second HTTP client or TLS library. One `Otel` belongs to
//! one assembled gateway (no global provider): tests run several side by
//! side.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::InstrumentationScope;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::{ms, OtelConfig};
use crate::proxy::egress::{self, Connector};

/// A collector's answer is read up to this size (it is a short status).
const ANSWER_CAP: usize = 64 * 1024;

/// The longest a flush or the shutdown waits for the last export.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("otel.endpoint: {0}")]
    Endpoint(String),
    #[error("otel: the exporter could not be built: {0}")]
    Exporter(String),
}

/// Traces, on: the provider and its tracer.
pub struct Otel {
    provider: SdkTracerProvider,
    pub(super) tracer: SdkTracer,
    pub(super) propagator: TraceContextPropagator,
}

impl std::fmt::Debug for Otel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otel").finish_non_exhaustive()
    }
}

impl Otel {
    /// The provider `config` asks for, or `None` when traces are off. Runs
    /// inside the tokio runtime: the batch processor's task starts on it.
    pub fn start(config: &OtelConfig) -> Result<Option<Arc<Otel>>, OtelError> {
        if !config.enabled {
            return Ok(None);
        }
        let url = config.traces_url();
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| OtelError::Endpoint(e.to_string()))?;
        let timeout = ms(config.timeout_ms);
        let client = ExportClient::new(&uri, timeout)?;
        let headers: HashMap<String, String> = config
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().to_string()))
            .collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(url)
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(timeout)
            .with_headers(headers)
            .build()
            .map_err(|e| OtelError::Exporter(e.to_string()))?;
        let processor = BatchSpanProcessor::builder(exporter, runtime::Tokio).build();
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer_with_scope(
            InstrumentationScope::builder("backstop")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        Ok(Some(Arc::new(Otel {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
        })))
    }

    /// Exports every span ended so far; resolves when the collector
    /// answered (or after at most 10 s).
    pub async fn flush(&self) -> Result<(), String> {
        let provider = self.provider.clone();
        bounded(move || provider.force_flush().map_err(|e| e.to_string())).await
    }

    /// Exports what is left and stops the exporter (on gateway shutdown,
    /// after the drain: the last requests' spans go out too).
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        match bounded(move || provider.shutdown().map_err(|e| e.to_string())).await {
            Ok(()) => tracing::debug!("traces flushed"),
            Err(e) => tracing::warn!(error = %e, "the last traces could not be exported"),
        }
    }
}

/// Runs a blocking provider call (it waits on the batch task, which runs on
/// the runtime) off the runtime's threads, for at most [`FLUSH_LIMIT`].
async fn bounded(call: impl FnOnce() -> Result<(), String> + Send + 'static) -> Result<(), String> {
    match tokio::time::timeout(FLUSH_LIMIT, tokio::task::spawn_blocking(call)).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", FLUSH_LIMIT.as_secs())),
    }
}

/// The exporter's HTTP client: the gateway's connector for the collector's
/// route, each export bounded by `timeout`.
struct ExportClient {
    client: Client<Connector, Full<Bytes>>,
    /// `Proxy-Authorization` when a forward proxy is in the way.
    proxy_auth: Option<HeaderValue>,
    timeout: Duration,
}

impl std::fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ExportClient {
    fn new(uri: &Uri, timeout: Duration) -> Result<ExportClient, OtelError> {
        let route = egress::route(uri, "", &egress::process_env).map_err(OtelError::Endpoint)?;
        let tls = egress::tls_config("").map_err(OtelError::Endpoint)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(Connector::new(&route, timeout, &tls));
        Ok(ExportClient {
            client,
            proxy_auth: route.request_auth().cloned(),
            timeout,
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut request = Request::from_parts(parts, Full::new(body));
        if let Some(auth) = &self.proxy_auth {
            request
                .headers_mut()
                .insert(http::header::PROXY_AUTHORIZATION, auth.clone());
        }
        let exchange = async {
            let answer = self.client.request(request).await?;
            let (parts, body) = answer.into_parts();
            let body = Limited::new(body, ANSWER_CAP).collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(format!(
                "the collector did not answer within {} ms",
                self.timeout.as_millis()
            )
            .into()),
        }
    }
}
