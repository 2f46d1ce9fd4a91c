//! The upstream leg: the HTTP client and the mapping of a client path onto
//! an upstream's base URL ([`upstream`]), header rules for both legs
//! ([`headers`]), reading answer bodies ([`body`]), and the live state of
//! every routing target ([`targets`]).

pub mod body;
pub mod egress;
pub mod headers;
pub mod targets;
pub mod upstream;
