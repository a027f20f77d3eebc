//! `GET /api/v1/token/inspect`: which projects and groups CDF gives the token. `tapline validate
//! --check-auth` asks it when the config has a `cdf:` block, so a token that the identity
//! provider hands out but CDF does not accept (wrong scope, no group in the project) shows up
//! before the first run, not as a 401 or 403 in it.

use reqwest::Method;
use serde::Deserialize;

use super::api::CdfApi;
use super::error::CdfError;
use crate::session::Session;

/// What CDF says about the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInspection {
    /// Who the token stands for.
    #[serde(default)]
    pub subject: String,
    /// The projects it reaches.
    #[serde(default)]
    pub projects: Vec<ProjectAccess>,
}

/// One project the token reaches, with the groups that give it access.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectAccess {
    /// The project's URL name.
    pub project_url_name: String,
    /// The group ids.
    #[serde(default)]
    pub groups: Vec<i64>,
}

/// The token check failed.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The request failed.
    #[error("CDF token check failed")]
    Request(#[source] Box<CdfError>),
    /// The answer is not CDF's.
    #[error("CDF token check: the answer of GET /api/v1/token/inspect is not a token inspection")]
    Answer,
    /// The token does not reach the configured project.
    #[error("CDF token check: the token does not reach project {project:?}; it reaches: {}", if seen.is_empty() { "none".to_string() } else { seen.join(", ") })]
    NoProject {
        /// The configured project.
        project: String,
        /// The projects it does reach.
        seen: Vec<String>,
    },
}

/// Asks CDF about the session's token and checks that it reaches the configured project; returns
/// a line for the user.
pub async fn check(api: &CdfApi, session: &Session) -> Result<String, InspectError> {
    let answer = api
        .send::<()>(session, Method::GET, "/api/v1/token/inspect", None)
        .await
        .map_err(|error| InspectError::Request(Box::new(error)))?;
    let inspection: TokenInspection =
        serde_json::from_value(answer).map_err(|_| InspectError::Answer)?;
    let project = &api.config().project;
    let Some(access) = inspection
        .projects
        .iter()
        .find(|p| &p.project_url_name == project)
    else {
        let seen = inspection
            .projects
            .iter()
            .map(|p| p.project_url_name.clone())
            .collect();
        return Err(InspectError::NoProject {
            project: project.clone(),
            seen,
        });
    };
    let groups: Vec<String> = access.groups.iter().map(i64::to_string).collect();
    Ok(format!(
        "CDF OK: project {project}, groups {} (subject {})",
        if groups.is_empty() {
            "none".to_string()
        } else {
            groups.join(", ")
        },
        inspection.subject
    ))
}
