//! The proxy core: the upstream client, header rules, and the per-attempt
//! service the retry layer drives.

pub mod attempt;
pub mod headers;
pub mod targets;
pub mod upstream;
