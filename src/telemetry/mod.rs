//! What the process tells the outside: logs ([`logging`]), Prometheus metrics ([`metrics`], named
//! in the [`catalogue`]) and the health server ([`server`], served within [`Limits`]).

pub mod catalogue;
mod connection_limit;
mod listener;
pub mod logging;
pub mod metrics;
pub mod server;

pub use listener::{serve_on, Limits};
pub use server::{router, Readiness, ServerState};
