//! What the process tells the outside: logs ([`logging`]), Prometheus metrics ([`metrics`]) and
//! the health server ([`server`]).

pub mod logging;
pub mod metrics;
pub mod server;

pub use server::{router, Readiness, ServerState};
