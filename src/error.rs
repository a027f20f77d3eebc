//! The one error type at the library's edge, which knows the process exit code it maps to.

/// Anything that stops a tapline command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (exit code 2).
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    /// No token could be obtained (exit code 1).
    #[error(transparent)]
    Auth(#[from] crate::auth::Error),
    /// Running the tasks failed (exit code 2 for task config problems, else 1).
    #[error(transparent)]
    Run(#[from] crate::runner::Error),
    /// `validate --check-auth`: a task's check against its source failed (exit code 1).
    #[error("task {task:?}: check failed")]
    Check {
        /// The task's name.
        task: String,
        /// What its check found.
        #[source]
        source: crate::runner::TaskError,
    },
    /// CDF did not accept the token (`validate --check-auth`, exit code 1).
    #[error(transparent)]
    Cdf(#[from] crate::sinks::cdf::inspect::InspectError),
    /// `validate --check-auth`: the coordination database could not be reached (exit code 1).
    #[error(transparent)]
    Coordination(#[from] crate::coordination::Error),
    /// The remote config could not be had (exit code 1; 2 for a cached one with problems).
    #[error(transparent)]
    RemoteConfig(#[from] crate::reload::StartError),
    /// Standard output could not be written (exit code 1).
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
}

impl Error {
    /// The process exit code: 2 for bad configuration, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::RemoteConfig(crate::reload::StartError::Invalid(_)) => 2,
            Self::Run(error) => error.exit_code(),
            Self::Auth(_)
            | Self::Check { .. }
            | Self::Cdf(_)
            | Self::Coordination(_)
            | Self::RemoteConfig(_)
            | Self::Stdout(_) => 1,
        }
    }
}
