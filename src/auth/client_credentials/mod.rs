//! The OAuth 2.0 client credentials grant: one token source, several ways for the client to prove
//! who it is.
//!
//! Why one source: `client-secret`, `certificate`, `kognic` and `workload-identity` all send the
//! same request (`grant_type=client_credentials`, the scope, the configured `token-args`) to a
//! token endpoint; they differ only in the client's proof. So [`ClientCredentials`] makes the
//! request once, and a [`ClientProof`] says what to add to it, as azure_identity's
//! `ClientAssertionCredential<C: ClientAssertion>` does:
//!
//! - `secret.rs`: [`ClientSecret`], the secret in the form (client_secret_post) or as HTTP Basic
//!   (client_secret_basic); `type: client-secret`.
//! - `kognic.rs`: the same [`ClientSecret`] proof, with the id and secret from a kognic-auth
//!   credentials file or `KOGNIC_*`; `type: kognic`.
//! - `certificate.rs`: [`CertificateAssertion`], a private_key_jwt assertion signed with the
//!   client's certificate key; `type: certificate`.
//! - `federated.rs`: [`FederatedToken`], a projected service-account token as the assertion;
//!   `type: workload-identity`.
//!
//! Each of these files is also the whole provider of its `type`: the config struct, `build`
//! (its rules) and the [`Provider`](crate::auth::Provider) that makes the source.
//!
//! `certificate_file.rs` reads the certificate and key files (PEM, encrypted PKCS#8, PKCS#12).
//!
//! A proof is made anew for every token request: a secret file is read again (rotation), an
//! assertion is signed fresh (AADSTS700024 comes from reusing one), the federated token file is
//! read again (the kubelet rotates it).

pub mod certificate;
mod certificate_file;
pub mod federated;
pub mod kognic;
pub mod secret;

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;

pub use certificate::{Certificate, CertificateAssertion, CertificateConfig, CertificateProvider};
pub use federated::{
    FederatedToken, WorkloadIdentity, WorkloadIdentityConfig, WorkloadIdentityEnv,
    WorkloadIdentityProvider,
};
pub use kognic::{KognicConfig, KognicEnv, KognicProvider};
pub use secret::{ClientAuth, ClientSecret, ClientSecretConfig, ClientSecretProvider};

use super::token_endpoint::{ClientAuthentication, FormValue, TokenEndpoint};
use super::{Error, FetchedToken, TokenSource};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How a client proves its identity to the token endpoint: the credential behind one
/// [`ClientCredentials`] source.
#[async_trait::async_trait]
pub trait ClientProof: Send + Sync + fmt::Debug {
    /// The proof for one token request to `token_url` by `client_id`, made now.
    async fn prove(&self, client_id: &str, token_url: &str) -> Result<Proof, Error>;
}

/// What one token request carries to authenticate the client. The secret inside is exposed only
/// while the request is written.
pub enum Proof {
    /// `client_id` and `client_secret` form fields (client_secret_post).
    SecretInForm(SecretString),
    /// HTTP Basic with the client id and secret (client_secret_basic).
    SecretInBasic(SecretString),
    /// `client_id`, `client_assertion_type` (JWT bearer) and `client_assertion`: a signed
    /// private_key_jwt, or a federated token.
    Assertion(SecretString),
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SecretInForm(_) => "Proof::SecretInForm([REDACTED])",
            Self::SecretInBasic(_) => "Proof::SecretInBasic([REDACTED])",
            Self::Assertion(_) => "Proof::Assertion([REDACTED])",
        })
    }
}

/// Fetches tokens with the client credentials grant, authenticated by the proof `P`.
///
/// Built from config by each proof's file: `ClientCredentials::<ClientSecret>::new` (and
/// `::kognic`), `ClientCredentials::<CertificateAssertion>::new`,
/// `ClientCredentials::<FederatedToken>::new` (alias [`WorkloadIdentity`]).
pub struct ClientCredentials<P> {
    endpoint: TokenEndpoint,
    client_id: String,
    /// Space-separated; omitted from the form when empty.
    scope: String,
    token_args: Vec<(String, String)>,
    proof: P,
}

impl<P: ClientProof> ClientCredentials<P> {
    /// Checks the token URL (https, or http on loopback) and keeps `http` for the token requests.
    fn from_parts(
        token_url: &str,
        client_id: String,
        scopes: &[String],
        token_args: &BTreeMap<String, String>,
        proof: P,
        http: reqwest::Client,
    ) -> Result<Self, Error> {
        Ok(Self {
            endpoint: TokenEndpoint::new(token_url, http)?,
            client_id,
            scope: scopes.join(" "),
            token_args: token_args
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            proof,
        })
    }

    /// The client id in use (not secret), e.g. to show which configuration won.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The token URL in use.
    pub fn token_url(&self) -> &str {
        self.endpoint.url()
    }

    /// The form fields of the grant: `grant_type`, `scope` (when not empty), the `token-args`,
    /// then whatever `proof` puts in the form.
    fn form<'a>(&'a self, proof: &'a Proof) -> Vec<(&'a str, FormValue<'a>)> {
        let mut form = vec![("grant_type", FormValue::Plain("client_credentials"))];
        if !self.scope.is_empty() {
            form.push(("scope", FormValue::Plain(&self.scope)));
        }
        for (name, value) in &self.token_args {
            form.push((name, FormValue::Plain(value)));
        }
        let client_id = ("client_id", FormValue::Plain(&self.client_id));
        match proof {
            Proof::SecretInForm(secret) => {
                form.extend([client_id, ("client_secret", FormValue::Secret(secret))]);
            }
            Proof::SecretInBasic(_) => {}
            Proof::Assertion(assertion) => form.extend([
                client_id,
                ("client_assertion_type", FormValue::Plain(JWT_BEARER)),
                ("client_assertion", FormValue::Secret(assertion)),
            ]),
        }
        form
    }
}

#[async_trait::async_trait]
impl<P: ClientProof> TokenSource for ClientCredentials<P> {
    async fn fetch(&self) -> Result<FetchedToken, Error> {
        let proof = self.proof.prove(&self.client_id, self.token_url()).await?;
        let authentication = match &proof {
            Proof::SecretInBasic(secret) => ClientAuthentication::Basic {
                id: &self.client_id,
                secret,
            },
            Proof::SecretInForm(_) | Proof::Assertion(_) => ClientAuthentication::InForm,
        };
        self.endpoint
            .request(&self.form(&proof), authentication)
            .await
    }
}

impl<P: fmt::Debug> fmt::Debug for ClientCredentials<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("proof", &self.proof)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    /// A fixed proof, to look at the form it produces.
    #[derive(Debug)]
    struct Fixed;

    #[async_trait::async_trait]
    impl ClientProof for Fixed {
        async fn prove(&self, _: &str, _: &str) -> Result<Proof, Error> {
            unreachable!("the form tests never fetch")
        }
    }

    fn source(scopes: &[&str]) -> ClientCredentials<Fixed> {
        let args = BTreeMap::from([("resource".to_string(), "api://x".to_string())]);
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        ClientCredentials::from_parts(
            "https://idp.test/token",
            "me".into(),
            &scopes,
            &args,
            Fixed,
            reqwest::Client::new(),
        )
        .unwrap()
    }

    fn fields(form: &[(&str, FormValue<'_>)]) -> Vec<String> {
        form.iter()
            .map(|(name, value)| match value {
                FormValue::Plain(text) => format!("{name}={text}"),
                FormValue::Secret(secret) => format!("{name}=<{}>", secret.expose_secret()),
            })
            .collect()
    }

    #[test]
    fn each_proof_adds_its_own_fields_to_the_one_grant() {
        let source = source(&["a", "b"]);
        let secret = || SecretString::from("s");
        let common = [
            "grant_type=client_credentials",
            "scope=a b",
            "resource=api://x",
        ];
        let form = |proof| fields(&source.form(&proof));
        assert_eq!(
            form(Proof::SecretInForm(secret())),
            [&common[..], &["client_id=me", "client_secret=<s>"]].concat()
        );
        assert_eq!(form(Proof::SecretInBasic(secret())), common);
        assert_eq!(
            form(Proof::Assertion(secret())),
            [
                &common[..],
                &[
                    "client_id=me",
                    "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion=<s>",
                ]
            ]
            .concat()
        );
    }

    #[test]
    fn an_empty_scope_is_left_out_and_debug_hides_the_proof() {
        let (source, proof) = (source(&[]), Proof::SecretInBasic(SecretString::from("s")));
        assert!(!fields(&source.form(&proof))
            .iter()
            .any(|field| field.starts_with("scope")));
        let debug = format!("{:?}", Proof::Assertion(SecretString::from("hunter2")));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn an_http_token_url_is_refused() {
        let error = ClientCredentials::from_parts(
            "http://idp.example.com/token",
            "me".into(),
            &[],
            &BTreeMap::new(),
            Fixed,
            reqwest::Client::new(),
        )
        .unwrap_err();
        assert!(matches!(error, Error::TokenUrl { .. }), "{error}");
    }
}
