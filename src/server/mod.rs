//! The server: the accept loop with its connection limits and graceful
//! shutdown ([`serve`]), each client connection under watch ([`conn`]),
//! and a gateway started in this process for tests ([`running`]).

pub mod conn;
pub mod running;
pub mod serve;

pub use running::{bind, serve_all, shutdown_signal, start, Listeners, Running};
pub use serve::{raise_fd_limit, serve};
