//! The mock over real HTTP, in-process: error formats, routes, streams and
//! their faults, the Responses API, and the official SDK's reading of it.

mod events;
mod faults;
mod http;
mod responses;
mod routes;
mod sdk;
mod stream;
