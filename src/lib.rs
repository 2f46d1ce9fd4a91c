//! backstop — a reverse-proxy resilience gateway for OpenAI-compatible LLM
//! APIs. See README.md for what it does and `app` for how the stack is built.

pub mod mock;
pub mod outcome;
pub mod taxonomy;
