//! Integration tests: one binary, a shared harness (real identity provider, loopback servers,
//! the `tapline` binary), and one file per area.

mod config;
mod harness;
mod session;
