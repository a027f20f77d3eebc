//! The `tapline` command line: parses arguments, calls the library, maps errors to exit codes
//! (0 success, 1 runtime or auth failure, 2 bad configuration).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tapline::config::{self, Config};
use tapline::runner::{Registry, Runner};

#[derive(Parser)]
#[command(
    name = "tapline",
    version,
    about = "Configuration-driven extractor framework"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every task until SIGTERM or SIGINT.
    Run {
        /// Config file (default: $TAPLINE_CONFIG, else ./tapline.yaml).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Run each task once, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Load and check the config, printing every problem with its key path.
    Validate {
        /// Config file (default: $TAPLINE_CONFIG, else ./tapline.yaml).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Also fetch a token with the configured credentials.
        #[arg(long)]
        check_auth: bool,
    },
    /// Print an access token and a newline on stdout.
    Token {
        /// Config file (default: $TAPLINE_CONFIG, else ./tapline.yaml).
        #[arg(short, long, conflicts_with = "kognic")]
        config: Option<PathBuf>,
        /// Use Kognic credentials without a config file, resolved as `kognic-auth` does:
        /// --credentials, else $KOGNIC_CREDENTIALS, else $KOGNIC_CLIENT_ID + $KOGNIC_CLIENT_SECRET.
        #[arg(long)]
        kognic: bool,
        /// Kognic credentials JSON file (with --kognic).
        #[arg(long, requires = "kognic")]
        credentials: Option<PathBuf>,
        /// Kognic auth server (with --kognic; default https://auth.app.kognic.com).
        #[arg(long, requires = "kognic")]
        server: Option<String>,
    },
    /// Sign in once (device-code or browser auth) and fill the token cache file, so that later
    /// runs need no prompt.
    Login {
        /// Config file (default: $TAPLINE_CONFIG, else ./tapline.yaml).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Print the JSON Schema of the config file.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", chain(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(command: Command) -> Result<(), tapline::Error> {
    match command {
        Command::Run { config, once } => {
            let config = load(config)?;
            tapline::telemetry::logging::init(&config.logging);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("the tokio runtime starts");
            let result = runtime.block_on(Runner::builder(config).once(once).run());
            // The runner has waited out the grace period and saved the state; a run still stuck
            // in blocking I/O (a sink on a hung filesystem) must not keep the process alive.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            Ok(result?)
        }
        Command::Validate { config, check_auth } => {
            let config = load(config)?;
            println!("config OK: {}", summary(&config));
            if check_auth {
                init_cli_logging();
                match fetch_token(&config.auth, &config.session)? {
                    None => println!("auth OK: type none sends no token"),
                    Some(token) => match token.expires_at() {
                        Some(at) => println!(
                            "auth OK: token obtained (expires in {}s)",
                            at.saturating_duration_since(std::time::Instant::now())
                                .as_secs()
                        ),
                        None => println!("auth OK: token obtained (no expiry given)"),
                    },
                }
            }
            Ok(())
        }
        Command::Token {
            config,
            kognic,
            credentials,
            server,
        } => {
            init_cli_logging();
            let (auth, session) = if kognic {
                (
                    kognic_auth(credentials, server)?,
                    config::SessionConfig::default(),
                )
            } else {
                let config = load(config)?;
                (config.auth, config.session)
            };
            let token = fetch_token(&auth, &session)?.ok_or_else(|| {
                tapline::auth::Error::Misconfigured("auth type none has no token to print".into())
            })?;
            // The one place the token is meant to be seen: stdout, nothing else on it.
            println!("{}", token.secret().expose_secret());
            Ok(())
        }
        Command::Login { config } => {
            init_cli_logging();
            let config = load(config)?;
            let path = block_on(tapline::auth::Credentials::login(
                &config.auth,
                &config.session,
            ))?;
            eprintln!("signed in; tokens cached in {}", path.display());
            Ok(())
        }
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&config::schema()).expect("schema is JSON");
            println!("{schema}");
            Ok(())
        }
    }
}

/// Loads the config, checking every task's own keys with the task registry, so that `validate`
/// and `run` report task option problems like any other config problem (exit code 2).
fn load(flag: Option<PathBuf>) -> Result<Config, tapline::Error> {
    let path = config::config_path(flag.as_deref());
    let registry = Registry::with_builtins();
    let options = config::Options {
        task_types: &registry,
    };
    Ok(config::load(&path, &options)?)
}

/// Fetches one token outside any runner, on a runtime of its own.
fn fetch_token(
    auth: &config::AuthConfig,
    session: &config::SessionConfig,
) -> Result<Option<std::sync::Arc<tapline::auth::AccessToken>>, tapline::Error> {
    let credentials = tapline::auth::Credentials::from_auth(auth, session)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    Ok(runtime.block_on(credentials.token())?)
}

/// Runs `future` on a runtime of its own (the one-shot commands).
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(future)
}

/// The `auth:` block `tapline token --kognic` stands for; serde fills in the defaults.
fn kognic_auth(
    credentials: Option<PathBuf>,
    server: Option<String>,
) -> Result<config::AuthConfig, tapline::Error> {
    let mut block = serde_json::Map::new();
    if let Some(path) = credentials {
        block.insert(
            "credentials".into(),
            path.to_string_lossy().into_owned().into(),
        );
    }
    if let Some(server) = server {
        block.insert("server".into(), server.into());
    }
    let config: config::KognicConfig = serde_json::from_value(block.into())
        .map_err(|error| tapline::auth::Error::Misconfigured(error.to_string()))?;
    Ok(config::AuthConfig::Kognic(config))
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

/// The error and its causes, `: `-joined, as users need the "why" too.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn summary(config: &Config) -> String {
    let tasks = config.tasks.len();
    format!(
        "auth type {}, {tasks} task{}",
        config.auth.type_name(),
        if tasks == 1 { "" } else { "s" }
    )
}
