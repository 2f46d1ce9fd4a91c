//! Typed configuration (CONTRACT.md §1): the sections and their defaults
//! ([`sections`]), the routing sections ([`routing`]), loading — file,
//! `${VAR}` expansion, `BACKSTOP_*` overrides — ([`load`]) and the checks
//! serde cannot express ([`validate`]). The rest of the gateway reads the
//! checked [`Config`].

mod load;
mod otel;
mod routing;
mod secret;
mod sections;
mod url;
mod validate;
mod validate_routing;
mod warnings;

pub use load::{load, ConfigError, Source};
pub use otel::{parse_headers, OtelConfig, HTTP_PROTOBUF};
pub use routing::*;
pub use secret::Secret;
pub use sections::*;
pub use url::shown_url;
pub use validate::{check_url, validate_overrides};
pub use validate_routing::validate_routing;
pub use warnings::warnings;

#[cfg(test)]
mod tests;
