//! OpenTelemetry traces, off unless `[otel]` (or `OTEL_EXPORTER_OTLP_*`)
//! turns them on — and then free: no provider, no span, no allocation per
//! request, and the client's `traceparent` passes upstream untouched.
//!
//! On, the gateway exports over OTLP/HTTP (protobuf), batched on the tokio
//! runtime ([`export`]):
//! - one span per client request (kind SERVER), opened by `observe` as the
//!   child of the client's `traceparent` when it sent one, and ended when
//!   the answer's last byte went out — a stream's too — with the final
//!   kind, status and attempt count;
//! - one span per upstream attempt (kind CLIENT), opened by the retry chain
//!   under the request's span and ended when the chain counts the attempt,
//!   or, for the stream that goes out, by its watcher when the stream ends.
//!   Each attempt sends its own span's `traceparent` upstream.
//!
//! Both carry the GenAI semantic-convention attributes ([`genai`] names
//! the operation and the provider). The layers call the small surface of
//! [`spans`]; nothing here decides anything for the request path.

pub mod export;
pub mod genai;
pub mod spans;

pub use export::{Otel, OtelError};
pub use spans::{AttemptSpan, AttemptStart, RequestEnd, RequestSpan, RequestTrace};
