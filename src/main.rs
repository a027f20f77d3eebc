//! The `tapline` command line: parses arguments, calls the library, maps errors to exit codes
//! (0 success, 1 runtime or auth failure, 2 bad configuration).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tapline::config::{self, Config};

#[derive(Parser)]
#[command(name = "tapline", version, about = "Configuration-driven extractor framework")]
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
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(command: Command) -> Result<(), tapline::Error> {
    match command {
        Command::Run { .. } => Err(tapline::Error::NotAvailable("run")),
        Command::Validate { config, check_auth } => {
            let config = load(config)?;
            println!("config OK: {}", summary(&config));
            if check_auth {
                return Err(tapline::Error::NotAvailable("validate --check-auth"));
            }
            Ok(())
        }
        Command::Token { .. } => Err(tapline::Error::NotAvailable("token")),
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&config::schema()).expect("schema is JSON");
            println!("{schema}");
            Ok(())
        }
    }
}

fn load(flag: Option<PathBuf>) -> Result<Config, tapline::Error> {
    let path = config::config_path(flag.as_deref());
    let options = config::Options {
        task_types: tapline::tasks::BUILTIN.iter().map(|s| s.to_string()).collect(),
    };
    Ok(config::load(&path, &options)?)
}

fn summary(config: &Config) -> String {
    let tasks = config.tasks.len();
    format!(
        "auth type {}, {tasks} task{}",
        config.auth.type_name(),
        if tasks == 1 { "" } else { "s" }
    )
}
