//! Integration tests: one binary, a shared harness (real identity provider, loopback servers,
//! the `tapline` binary), and one file per area.

mod auth;
mod config;
mod harness;
mod login;
mod token_cli;
