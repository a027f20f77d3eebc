//! Integration tests: one binary, a shared harness (real identity provider, loopback servers,
//! the `tapline` binary), and one file per area.

mod auth;
mod buffer;
mod cdf;
mod cdf_runs;
mod cdf_sdk;
mod components;
mod config;
mod file_source;
mod harness;
mod http_poll;
mod kognic_reference;
mod kubernetes;
mod login;
mod process;
mod redaction;
mod registry;
mod reload;
mod remote_config;
mod replicas;
mod runner;
mod session;
mod sql_mariadb;
mod sql_postgres;
mod sql_scenarios;
mod sql_sqlite;
mod telemetry;
mod token_cli;
mod transform;
