//! The proxy stack's layers, outermost first (composed in one place,
//! [`crate::app`], which says why each is where it is):
//! [`observe`] → [`catch`] → [`admit`] → [`retry`] → [`inspect`] →
//! [`exchange`]. What travels between them is in [`crate::attempt`].

pub mod admit;
pub mod catch;
pub mod deliver;
pub mod exchange;
pub mod inspect;
pub mod observe;
pub mod respond;
pub mod retry;
#[cfg(test)]
pub mod testing;
