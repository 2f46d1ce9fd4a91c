//! Rate limits as answers state them: [`after`] reads the wait an answer
//! asks for (`Retry-After` and co.) and clamps the wait the gateway tells a
//! client; [`advertised`] reads what is left of a limit and when it resets.
//! Pure functions of headers and a clock, shared by the classifier, the
//! retry chain and the pacer.

pub mod advertised;
pub mod after;
