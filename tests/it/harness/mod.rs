//! What the integration tests share: the real identity provider, the CLI, unique names.

#![allow(dead_code)]

pub mod api;
pub mod capture;
pub mod cdf;
pub mod cert;
pub mod cli;
pub mod cognite_sdk;
pub mod idp;
pub mod jwt;
pub mod kognic_auth;
pub mod kube_api;
pub mod kube_discovery;
pub mod logs;
pub mod loopback;
pub mod mariadb;
pub mod packages;
pub mod postgres;
pub mod process;
pub mod replicas;
pub mod rss;
pub mod server;
pub mod server_cert;
pub mod venv;

use std::sync::atomic::{AtomicU64, Ordering};

/// A name no other test in this run uses, for client ids and fault keys.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
