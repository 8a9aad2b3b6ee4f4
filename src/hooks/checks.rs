//! `POST /hooks/checks`: CI reports a scorecard check only it knows
//! (`ci-passing`, `has-monitoring`, a configured `pushed` check), signed
//! like the other hooks.

use serde::Deserialize;

use super::text;
use crate::domain::ServiceName;
use crate::storage::now_ms;
use crate::storage::scorecards::PushedResult;

/// The body (README: "Scorecards").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    service: String,
    check: String,
    passed: bool,
    #[serde(default)]
    detail: Option<String>,
    /// RFC 3339; default: now. A result older than the stored one is ignored.
    #[serde(default)]
    at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("{0}")]
    Json(String),
    #[error("`service`: {0}")]
    Service(String),
    #[error("`at` is not an RFC 3339 time (2026-11-27T10:00:00Z)")]
    At,
    #[error("`at` is in the future")]
    Future,
}

pub fn parse(body: &[u8]) -> Result<PushedResult, Unreadable> {
    let b: Body = super::from_json(body).map_err(Unreadable::Json)?;
    let service = ServiceName::parse(b.service.trim().to_ascii_lowercase())
        .map_err(|e| Unreadable::Service(e.to_string()))?;
    let now = now_ms();
    let at = match &b.at {
        None => now,
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|_| Unreadable::At)?
            .timestamp_millis(),
    };
    // A minute of clock skew is fine; a result from tomorrow would pin the
    // check until tomorrow.
    if at > now + 60_000 {
        return Err(Unreadable::Future);
    }
    Ok(PushedResult {
        service,
        check: b.check.trim().to_owned(),
        passed: b.passed,
        detail: b.detail.as_deref().and_then(text),
        source: "hook".into(),
        at,
    })
}
