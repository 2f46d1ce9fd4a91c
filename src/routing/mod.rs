//! Routing across targets: which targets a requested model may go to and in
//! what order ([`plan`]), whether a failure moves on to the next one
//! ([`fallback`]), which targets are out of rotation ([`circuit`]) and which
//! must be held back to stay inside their advertised rate limits
//! ([`pacing`]).
//!
//! Everything here is a decision: no I/O, no logging, no metrics, time
//! passed in. The proxy builds one [`RoutingTable`] from the configuration
//! and keeps one [`Circuit`] and one [`Pacer`] per [`TargetInfo::id`]; per
//! attempt it asks the plan for a target, the circuit and the pacer whether
//! it may go, and on failure [`next_target`] where to go next.

pub mod circuit;
pub mod fallback;
pub mod kinds;
pub mod pacing;
pub mod plan;

pub use circuit::{Admission, Circuit, CircuitState, Transition};
pub use fallback::next_target;
pub use kinds::KindSet;
pub use pacing::{Pacer, Reservation};
pub use plan::{Plan, RoutingTable, Target, TargetId, TargetInfo};
