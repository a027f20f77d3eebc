//! What each command does, on top of the library.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use super::Command;
use crate::auth::{AccessToken, Credentials, Provider};
use crate::config::{self, ComponentConfig, Config, SessionConfig};
use crate::{Error, Registry};

pub(super) fn run(command: Command, registry: &Registry) -> Result<(), Error> {
    match command {
        Command::Run {
            config,
            once,
            watch,
        } => run_tasks(registry, config, once, watch),
        Command::Validate { config, check_auth } => validate(registry, config, check_auth),
        Command::Token {
            config,
            kognic,
            credentials,
            server,
        } => {
            init_cli_logging();
            let (provider, session) = if kognic {
                let block = kognic_block(credentials, server);
                (provider_for(registry, &block)?, SessionConfig::default())
            } else {
                let config = load(registry, config)?;
                (provider(registry, &config)?, config.session)
            };
            let token = fetch_token(provider.as_ref(), &session)?.ok_or_else(|| {
                crate::auth::Error::Misconfigured("auth type none has no token to print".into())
            })?;
            // The one place the token is meant to be seen: stdout, nothing else on it.
            print_line(token.secret().expose_secret())
        }
        Command::Login { config } => {
            init_cli_logging();
            let config = load(registry, config)?;
            let provider = provider(registry, &config)?;
            let path = block_on(provider.login(&config.session))?;
            eprintln!("signed in; tokens cached in {}", path.display());
            Ok(())
        }
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&registry.schema()).expect("schema is JSON");
            print_line(&schema)
        }
    }
}

fn run_tasks(
    registry: &Registry,
    flag: Option<PathBuf>,
    once: bool,
    watch: bool,
) -> Result<(), Error> {
    let path = config::config_path(flag.as_deref());
    let local = registry.load(&path)?;
    crate::telemetry::logging::init(&local.logging);
    let watch = (watch || local.reload.watch).then(|| local.reload.interval.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let result = runtime.block_on(async {
        let start = crate::reload::Start::of(registry, &path, local).await?;
        let (reloads, received) = tokio::sync::mpsc::channel(1);
        let mut runner = registry.runner(start.config)?.once(once).reloads(received);
        if let Some(credentials) = start.credentials {
            runner = runner.credentials(credentials);
        }
        let run = runner.run();
        tokio::pin!(run);
        if once {
            return Ok(run.await?);
        }
        let reloading = crate::reload::run(registry, path, watch, reloads, start.remote);
        Ok::<(), Error>(tokio::select! {
            result = &mut run => result,
            () = reloading => run.await,
        }?)
    });
    // The runner has waited out the grace period and saved the state; a run still stuck in
    // blocking I/O (a sink on a hung filesystem) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

fn validate(registry: &Registry, config: Option<PathBuf>, check_auth: bool) -> Result<(), Error> {
    let config = load(registry, config)?;
    print_line(&format!("config OK: {}", summary(&config)))?;
    if !check_auth {
        return Ok(());
    }
    init_cli_logging();
    let provider = provider(registry, &config)?;
    let credentials = provider.credentials(&config.session)?;
    let auth = match block_on(credentials.token())? {
        None => "auth OK: type none sends no token".to_string(),
        Some(token) => match token.expires_at() {
            Some(at) => format!(
                "auth OK: token obtained (expires in {}s)",
                at.saturating_duration_since(std::time::Instant::now())
                    .as_secs()
            ),
            None => "auth OK: token obtained (no expiry given)".to_string(),
        },
    };
    print_line(&auth)?;
    if let Some(cdf) = &config.cdf {
        print_line(&check_cdf(cdf, &config.session, credentials)?)?;
    }
    check_tasks(registry, &config)?;
    check_coordination(&config)
}

/// Connects to the coordination backend (`coordination:`), changing nothing.
fn check_coordination(config: &Config) -> Result<(), Error> {
    let lease = config.coordination.lease_duration.get();
    let line = block_on(async move {
        match crate::coordination::backend(config, "validate".into(), lease)? {
            Some((coordinator, _)) => coordinator.check().await.map(Some),
            None => Ok(None),
        }
    })?;
    line.map_or(Ok(()), |line| print_line(&line))
}

/// Asks CDF about the token: the project and groups it reaches.
fn check_cdf(
    cdf: &config::CdfConfig,
    session: &SessionConfig,
    credentials: Credentials,
) -> Result<String, Error> {
    let session = crate::session::Session::new(session, credentials)
        .map_err(crate::runner::Error::Session)?;
    let api = crate::sinks::cdf::CdfApi::new(cdf);
    Ok(block_on(crate::sinks::cdf::inspect::check(&api, &session))?)
}

/// Each task's own check against its real source ([`Task::check`]): connects, prepares.
///
/// [`Task::check`]: crate::runner::Task::check
fn check_tasks(registry: &Registry, config: &Config) -> Result<(), Error> {
    let plan = registry
        .plan(config)
        .map_err(|problems| crate::runner::Error::Tasks { problems })?;
    for spec in &plan.tasks {
        block_on(spec.task.check()).map_err(|source| Error::Check {
            task: spec.name.clone(),
            source,
        })?;
        print_line(&format!("task {} OK", spec.name))?;
    }
    Ok(())
}

/// Loads the config, checking every component's keys with the registry, so that `validate`
/// and `run` report every problem at once (exit code 2).
fn load(registry: &Registry, flag: Option<PathBuf>) -> Result<Config, Error> {
    Ok(registry.load(&config::config_path(flag.as_deref()))?)
}

/// The provider of `config`'s `auth:` block (with the `cdf:` default scope).
fn provider(registry: &Registry, config: &Config) -> Result<Arc<dyn Provider>, Error> {
    registry.provider_of(config).map_err(misconfigured)
}

/// The provider of an `auth:` block on its own.
fn provider_for(registry: &Registry, block: &ComponentConfig) -> Result<Arc<dyn Provider>, Error> {
    registry.provider_for(block).map_err(misconfigured)
}

fn misconfigured(problems: Vec<config::Problem>) -> Error {
    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
    crate::auth::Error::Misconfigured(list.join("; ")).into()
}

/// Fetches one token outside any runner, on a runtime of its own.
fn fetch_token(
    provider: &dyn Provider,
    session: &SessionConfig,
) -> Result<Option<Arc<AccessToken>>, Error> {
    let credentials: Credentials = provider.credentials(session)?;
    Ok(block_on(credentials.token())?)
}

/// Runs `future` on a runtime of its own (the one-shot commands).
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(future)
}

/// The `auth:` block `tapline token --kognic` stands for; the provider fills in the defaults.
fn kognic_block(credentials: Option<PathBuf>, server: Option<String>) -> ComponentConfig {
    let mut keys = Map::new();
    if let Some(path) = credentials {
        let path = path.to_string_lossy().into_owned();
        keys.insert("credentials".into(), Value::from(path));
    }
    if let Some(server) = server {
        keys.insert("server".into(), server.into());
    }
    ComponentConfig::new("kognic", keys)
}

/// Writes a line to stdout, or says why it could not: a reader that went away (a broken pipe)
/// is an error (exit 1) with a message, never a panic as with `println!`.
fn print_line(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(Error::Stdout)
}

/// Logs of the one-shot commands go to stderr (stdout may carry a token), at `warn` unless
/// `RUST_LOG` says otherwise.
fn init_cli_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn summary(config: &Config) -> String {
    let tasks = config.tasks.len();
    format!(
        "auth type {}, {tasks} task{}",
        config.auth.type_name,
        if tasks == 1 { "" } else { "s" }
    )
}
