//! Integration tests: one binary, a shared harness (real identity provider, loopback servers,
//! the `tapline` binary), and one file per area.

mod auth;
mod components;
mod config;
mod harness;
mod http_poll;
mod kognic_reference;
mod login;
mod process;
mod runner;
mod session;
mod telemetry;
mod token_cli;
