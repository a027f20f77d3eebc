//! The `tapline` command line as a library call: [`main`] parses the arguments, runs the command
//! with the components of a [`Registry`], and maps the result to an exit code (0 success, 1
//! runtime or auth failure, 2 bad configuration). The `tapline` binary is this call with the
//! built-in registry; a library user's extractor is the same call with their components added,
//! so it gets the same commands, flags and exit codes.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let registry = tapline::Registry::builtin();
//!     // registry.source("my-source", my_source::build);
//!     tapline::cli::main("my-extractor", registry)
//! }
//! ```

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::Registry;

#[derive(Parser)]
#[command(version, about = "Configuration-driven extractor framework")]
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
        /// Re-read the config whenever its content changes (as `reload.watch: true`); SIGHUP
        /// re-reads it in any case.
        #[arg(long, conflicts_with = "once")]
        watch: bool,
    },
    /// Load and check the config, printing every problem with its key path.
    Validate {
        /// Config file (default: $TAPLINE_CONFIG, else ./tapline.yaml).
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Also fetch a token with the configured credentials, and check each task against its
        /// source (a `sql` task connects and prepares its query).
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
    /// Print the JSON Schema of the config file, with every registered component's keys.
    Schema,
}

/// Runs the command line of the extractor `name` (used in `--help` and `--version`) with the
/// components of `registry`, and returns the process exit code.
pub fn main(name: &'static str, registry: Registry) -> ExitCode {
    let matches = Cli::command().name(name).bin_name(name).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    match commands::run(cli.command, &registry) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", chain(&error));
            ExitCode::from(error.exit_code())
        }
    }
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
