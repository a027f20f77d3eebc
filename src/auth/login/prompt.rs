//! How a login talks to the person signing in, and whether one may be started at all.
//!
//! Why a trait: the command line prints to stderr and opens the system browser, while tests (and
//! library users with a GUI) answer the login themselves.

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;

/// How a login talks to the person signing in.
pub trait LoginPrompt: Send + Sync + fmt::Debug {
    /// Device code: tell the person where to go and which code to enter.
    fn device_code(&self, verification_uri: &str, user_code: &str, complete_uri: Option<&str>);
    /// Browser: send the person's browser to `url` (the authorization request).
    fn open_browser(&self, url: &str);
}

/// The prompt of the command line: messages on stderr (stdout may carry a token), and the
/// system browser opened when asked for.
#[derive(Debug, Clone, Copy)]
pub struct TerminalPrompt {
    /// Try to open the system browser for the browser login.
    pub open_browser: bool,
}

impl LoginPrompt for TerminalPrompt {
    fn device_code(&self, verification_uri: &str, user_code: &str, complete_uri: Option<&str>) {
        eprintln!("To sign in, open {verification_uri} and enter the code {user_code}");
        if let Some(complete) = complete_uri {
            eprintln!("(or open {complete})");
        }
    }

    fn open_browser(&self, url: &str) {
        eprintln!("To sign in, open this URL in your browser:\n{url}");
        if self.open_browser && !launch_browser(url) {
            eprintln!("(could not open a browser; open the URL above yourself)");
        }
    }
}

/// Starts the system's URL opener; false when there is none.
fn launch_browser(url: &str) -> bool {
    let opener: &[&str] = if cfg!(target_os = "macos") {
        &["open"]
    } else if cfg!(windows) {
        &["cmd", "/C", "start", ""]
    } else {
        &["xdg-open"]
    };
    std::process::Command::new(opener[0])
        .args(&opener[1..])
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// Who answers a login, and whether one may be started at all.
#[derive(Clone, Debug)]
pub struct LoginOptions {
    /// Tells the person what to do.
    pub prompt: Arc<dyn LoginPrompt>,
    /// A new login may be started when no refresh token works. Off, a missing or rejected
    /// refresh token is an [`Error::LoginRequired`](crate::auth::Error::LoginRequired).
    pub allow_login: bool,
}

impl LoginOptions {
    /// The command line's options: a [`TerminalPrompt`], and logins only when stdin and stderr
    /// are terminals (a person is there to answer).
    pub fn terminal(open_browser: bool) -> Self {
        Self {
            prompt: Arc::new(TerminalPrompt { open_browser }),
            allow_login: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        }
    }

    /// The options of `tapline login`: a [`TerminalPrompt`], and logins allowed, since the
    /// person at the terminal asked to sign in.
    pub fn login_command(open_browser: bool) -> Self {
        Self {
            allow_login: true,
            ..Self::terminal(open_browser)
        }
    }
}
