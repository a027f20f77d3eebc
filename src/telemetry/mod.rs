//! What the process tells the outside: logs ([`logging`]), Prometheus metrics ([`metrics`], named
//! in the [`catalogue`]) and the health server ([`server`]).

pub mod catalogue;
pub mod logging;
pub mod metrics;
pub mod server;

pub use server::{router, Readiness, ServerState};
