//! The interactive logins, `type: device-code` and `type: browser`: a person signs in once, and
//! the refresh token kept in a file renews the access token from then on.
//!
//! Why a family of its own: unlike the client credentials grant, these flows need a person, a
//! refresh token and a place to keep it between processes. The files:
//!
//! - `interactive_login.rs`: [`InteractiveLogin`], the [`TokenSource`](crate::auth::TokenSource):
//!   cached access token, else refresh token, else a new login when someone can answer it.
//! - `device_code.rs`: `type: device-code`, the device authorization grant (RFC 8628): a URL and
//!   a code on stderr; the provider's config, rules and credentials.
//! - `browser.rs`: `type: browser`, the authorization code grant with PKCE and a loopback
//!   redirect listener; the provider's config, rules and credentials.
//! - `refresh_token.rs`: the refresh grant, and which scopes the login and the refresh send.
//! - `token_cache_file.rs`: [`TokenCacheFile`], the 0600 file shared between processes.
//! - `prompt.rs`: [`LoginPrompt`] (how a login talks to the person) and [`LoginOptions`].
//! - `discovery.rs`: the token and login endpoints, from the config ([`InteractiveEndpoints`],
//!   and the rule both providers' blocks share), Entra ID's well-known paths or OIDC discovery.

pub mod browser;
pub mod device_code;
mod discovery;
mod interactive_login;
mod prompt;
mod refresh_token;
mod token_cache_file;

pub use browser::{BrowserConfig, BrowserProvider};
pub use device_code::{DeviceCodeConfig, DeviceCodeProvider};
pub use discovery::InteractiveEndpoints;
pub use interactive_login::InteractiveLogin;
pub use prompt::{LoginOptions, LoginPrompt, TerminalPrompt};
pub use token_cache_file::{CachedLogin, TokenCacheFile};
