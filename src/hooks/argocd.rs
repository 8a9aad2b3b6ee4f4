//! Argo CD notifications at the edge: the body the README's
//! `argocd-notifications-cm` template renders, typed. Argo CD does not
//! sign its webhooks, so the shared secret comes as a header (checked in
//! `hooks`); the body is as untrusted as any.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{text, web_url};
use crate::domain::{DeployStatus, Version};
use crate::notify::{Delivery, Source, Subject};

/// The template's body. Field names are the README snippet's.
#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    pub app: String,
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default)]
    pub sync_status: Option<String>,
    #[serde(default)]
    pub health_status: Option<String>,
    /// The last operation's phase: Running, Succeeded, Failed, Error, Terminating.
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub images: Option<Vec<String>>,
    #[serde(default)]
    pub external_urls: Option<Vec<String>>,
    #[serde(default)]
    pub app_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("not an Argo CD notification: {0}")]
    Json(String),
    #[error("`app` is empty")]
    NoApp,
    #[error("`phase` {0:?} is not an Argo CD operation phase")]
    Phase(String),
    #[error("`health_status` {0:?} is not an Argo CD health status")]
    Health(String),
}

/// What the application's state means for a deploy. `None`: nothing yet
/// to tell (no operation and no health to speak of).
fn status(n: &Notification) -> Result<Option<DeployStatus>, Unreadable> {
    let health = match n
        .health_status
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        None => None,
        Some(h) => Some(match h {
            "Healthy" => Health::Healthy,
            "Degraded" => Health::Degraded,
            "Progressing" | "Suspended" | "Missing" | "Unknown" => Health::Other,
            other => return Err(Unreadable::Health(other.to_owned())),
        }),
    };
    let phase = n.phase.as_deref().map(str::trim).filter(|p| !p.is_empty());
    Ok(match phase {
        Some("Running" | "Terminating") => Some(DeployStatus::InProgress),
        Some("Failed" | "Error") => Some(DeployStatus::Failed),
        Some("Succeeded") | None => match health {
            Some(Health::Healthy) => Some(DeployStatus::Healthy),
            Some(Health::Degraded) => Some(DeployStatus::Degraded),
            Some(Health::Other) if phase.is_some() => Some(DeployStatus::Deployed),
            _ => None,
        },
        Some(other) => return Err(Unreadable::Phase(other.to_owned())),
    })
}

enum Health {
    Healthy,
    Degraded,
    Other,
}

/// Reads a notification; `Ok(None)` when it says nothing about a deploy.
pub fn parse(body: &[u8]) -> Result<Option<Delivery>, Unreadable> {
    let n: Notification = super::from_json(body).map_err(Unreadable::Json)?;
    let app = n.app.trim().to_owned();
    if app.is_empty() {
        return Err(Unreadable::NoApp);
    }
    let Some(status) = status(&n)? else {
        return Ok(None);
    };
    // The version is the image tag when the application runs one tag
    // (a service's images are released together); else none is claimed.
    let mut tags: Vec<&str> = n
        .images
        .iter()
        .flatten()
        .filter_map(|i| i.rsplit_once(':').map(|(_, t)| t))
        // `latest` names no release.
        .filter(|t| !t.contains('/') && *t != "latest")
        .collect();
    tags.sort_unstable();
    tags.dedup();
    let version = match tags.as_slice() {
        [one] => Version::parse(one).ok(),
        _ => None,
    };
    // Argo CD sends no delivery id; the same body twice is the same news.
    let id = hex::encode(Sha256::digest(body));
    Ok(Some(Delivery {
        source: Source::ArgoCd,
        id,
        subject: Subject::ArgoApp { name: app },
        status,
        version,
        url: n.external_urls.iter().flatten().find_map(|u| web_url(u)),
        link: n.app_url.as_deref().and_then(web_url),
        message: n.message.as_deref().and_then(text),
        commit: n
            .revision
            .as_deref()
            .map(str::trim)
            .filter(|r| {
                !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .map(str::to_owned),
        commit_at: None,
        request_id: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(phase: &str, health: &str) -> Vec<u8> {
        serde_json::json!({
            "app": "order-service-staging",
            "revision": "4a1b2c3d",
            "sync_status": "Synced",
            "health_status": health,
            "phase": phase,
            "message": "successfully synced (all tasks run)",
            "images": ["ghcr.io/acme/order-service:2.5.0", "ghcr.io/acme/order-service-migrate:2.5.0"],
            "external_urls": ["javascript:alert(1)", "https://order-service.staging.example"],
            "app_url": "https://argocd.example/applications/order-service-staging"
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn phases_and_health_become_deploy_statuses() {
        let status = |p: &str, h: &str| parse(&body(p, h)).unwrap().map(|d| d.status);
        assert_eq!(
            status("Running", "Progressing"),
            Some(DeployStatus::InProgress)
        );
        assert_eq!(
            status("Succeeded", "Progressing"),
            Some(DeployStatus::Deployed)
        );
        assert_eq!(status("Succeeded", "Healthy"), Some(DeployStatus::Healthy));
        assert_eq!(status("Failed", "Healthy"), Some(DeployStatus::Failed));
        assert_eq!(status("", "Degraded"), Some(DeployStatus::Degraded));
        assert_eq!(status("", "Progressing"), None);
        assert!(parse(&body("Exploded", "Healthy")).is_err());
        assert!(parse(&body("Succeeded", "Sparkling")).is_err());
        let d = parse(&body("Succeeded", "Healthy")).unwrap().unwrap();
        assert_eq!(d.version.unwrap().as_str(), "2.5.0");
        // Only a web URL is shown.
        assert_eq!(
            d.url.as_deref(),
            Some("https://order-service.staging.example")
        );
        assert_eq!(d.commit.as_deref(), Some("4a1b2c3d"));
        let e = parse(br#"{"revision":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("`app`"), "{e}");
    }
}
