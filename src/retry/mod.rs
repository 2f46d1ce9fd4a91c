//! Retrying: the decisions that say whether and when another upstream
//! attempt is made. [`decide`] says what follows an attempt (retry, fall
//! over, or stop and why); [`backoff`] computes the jittered wait between
//! attempts. The chain that carries these decisions out (attempt count,
//! budget, deadline, targets) is a layer of the proxy stack.

pub mod backoff;
pub mod decide;
