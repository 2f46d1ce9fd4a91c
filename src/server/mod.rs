//! The server: the accept loop with its connection limits and graceful
//! shutdown ([`serve`]), each client connection under watch ([`conn`]),
//! and a gateway started in this process for tests ([`running`]).

pub mod conn;
pub mod running;
pub mod serve;

pub use running::{shutdown_signal, start, Running};
pub use serve::{raise_fd_limit, serve};
