//! The generic deploy hook: any orchestrator or script tells Paver about a
//! deploy in one documented JSON shape, signed like orchestrator callbacks
//! (`X-Paver-Timestamp`, `X-Paver-Signature: v1=…`).

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{text, web_url};
use crate::domain::{DeployStatus, Version};
use crate::notify::{Delivery, Source, Subject};

/// The hook's body (README: "The generic deploy hook").
#[derive(Debug, Clone, Deserialize)]
pub struct Body {
    /// Unique per event, so a resend is recognised; default: the body's digest.
    #[serde(default)]
    pub id: Option<String>,
    pub service: String,
    pub environment: String,
    pub status: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    /// RFC 3339: when `commit` was made (the report's lead time).
    #[serde(default)]
    pub commit_at: Option<String>,
    /// RFC 3339; shown nowhere yet, checked so a typo is reported.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// The Paver request this deploy carries out.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Where the deploy can be read (a pipeline run).
    #[serde(default)]
    pub link: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("{0}")]
    Json(String),
    #[error("`status` {0:?} is not one of queued, in_progress, deployed, healthy, degraded, failed, cancelled")]
    Status(String),
    #[error("`version` {0:?} is not a version")]
    Version(String),
    #[error("`url` must be an http(s) URL")]
    Url,
    #[error("`id` must be 1–100 characters")]
    Id,
    #[error("`{0}` is not an RFC 3339 time (2026-11-27T10:00:00Z)")]
    Time(&'static str),
}

pub fn parse(body: &[u8]) -> Result<Delivery, Unreadable> {
    let b: Body = super::from_json(body).map_err(Unreadable::Json)?;
    for (field, value) in [
        ("started_at", &b.started_at),
        ("finished_at", &b.finished_at),
        ("commit_at", &b.commit_at),
    ] {
        if let Some(v) = value {
            chrono::DateTime::parse_from_rfc3339(v).map_err(|_| Unreadable::Time(field))?;
        }
    }
    let status =
        DeployStatus::parse(&b.status).ok_or_else(|| Unreadable::Status(b.status.clone()))?;
    let version = b
        .version
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| Version::parse(v).map_err(|_| Unreadable::Version(v.to_owned())))
        .transpose()?;
    let url = match b.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => Some(web_url(u).ok_or(Unreadable::Url)?),
        None => None,
    };
    let id = match &b.id {
        Some(id) if id.is_empty() || id.len() > 100 => return Err(Unreadable::Id),
        Some(id) => id.clone(),
        None => hex::encode(Sha256::digest(body)),
    };
    Ok(Delivery {
        source: Source::Generic,
        id,
        subject: Subject::Service {
            name: b.service,
            environment: b.environment,
        },
        status,
        version,
        url,
        link: b.link.as_deref().and_then(web_url),
        message: b.message.as_deref().and_then(text),
        commit: b.commit.filter(|c| {
            !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric())
        }),
        commit_at: b
            .commit_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis()),
        request_id: b.request_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_shape_reads_and_mistakes_name_their_field() {
        let d = parse(
            br#"{"service":"order-service","environment":"staging","status":"healthy","version":"v2.5.0",
                 "url":"https://order-service.staging.example","commit":"4a1b2c3","started_at":"2026-11-27T10:00:00Z",
                 "commit_at":"2026-11-27T09:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(d.status, DeployStatus::Healthy);
        assert_eq!(d.commit_at, Some(1_795_770_000_000));
        assert_eq!(d.version.unwrap().as_str(), "2.5.0");
        assert_eq!(d.id.len(), 64);
        for (body, field) in [
            (r#"{"environment":"staging","status":"healthy"}"#, "service"),
            (
                r#"{"service":"a","environment":"staging","status":"great"}"#,
                "status",
            ),
            (
                r#"{"service":"a","environment":"staging","status":"healthy","url":"ftp://x"}"#,
                "url",
            ),
            (
                r#"{"service":"a","environment":"staging","status":"healthy","version":"2 5"}"#,
                "version",
            ),
            (
                r#"{"service":"a","environment":"staging","status":"healthy","commit_at":"noon"}"#,
                "commit_at",
            ),
            (
                r#"{"service":"a","environment":"staging","status":"healthy","finished_at":"yesterday"}"#,
                "finished_at",
            ),
        ] {
            let e = parse(body.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(field), "{body}: {e}");
        }
    }
}
