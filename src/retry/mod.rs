//! Retrying: the decisions that say whether and when another upstream
//! attempt is made. `after` reads the wait an upstream answer asks for;
//! `backoff` computes the jittered wait between attempts and the
//! `retry-after` the client is told. The retry layer that carries these
//! decisions out (attempt count, budget, deadline) sits in front of the
//! upstream client in the stack and lives here too.

pub mod after;
pub mod backoff;
pub mod layer;
pub mod policy;
