//! Inbound deploy hooks on `paver serve`: GitHub (`/hooks/github`), Argo
//! CD notifications (`/hooks/argocd`) and the generic hook
//! (`/hooks/generic`). Each is on exactly when its secret is configured.
//!
//! The edge's job: authenticate (401 and a log line otherwise), parse into
//! a typed [`Delivery`] (400 naming the field otherwise), hand it to the
//! notification flow and answer by what became of it — 202 when taken
//! (told, kept quiet by a rule, or a service the catalog does not know),
//! 200 for what is acknowledged and ignored (other GitHub events, a
//! redelivery), 503 when it could not be taken now (the sender retries).

pub mod argocd;
pub mod checks;
pub mod generic;
pub mod github;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::HooksConfig;
use crate::drivers::http::{verify_callback, CallbackRequest, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::notify::{Delivery, Notifications, NotifyError, Outcome};
use crate::scorecards::{ScorecardError, Scorecards};
use crate::storage::Db;
use crate::util::text::shorten;

pub const GITHUB_PATH: &str = "/hooks/github";
pub const ARGOCD_PATH: &str = "/hooks/argocd";
pub const GENERIC_PATH: &str = "/hooks/generic";
pub const CHECKS_PATH: &str = "/hooks/checks";

#[derive(Clone)]
struct HookState {
    db: Db,
    notify: Notifications,
    scorecards: Scorecards,
    secret: SecretString,
    tolerance_secs: u64,
}

/// The routes of the hooks whose secrets are set.
pub fn router(
    db: Db,
    notify: Notifications,
    scorecards: Scorecards,
    config: &HooksConfig,
) -> Router {
    let mut router = Router::new();
    let state = |secret: &SecretString| HookState {
        db: db.clone(),
        notify: notify.clone(),
        scorecards: scorecards.clone(),
        secret: secret.clone(),
        tolerance_secs: config.tolerance_secs,
    };
    if let Some(s) = &config.github_secret {
        router = router.merge(
            Router::new()
                .route(GITHUB_PATH, post(github_hook))
                .with_state(state(s)),
        );
    }
    if let Some(s) = &config.argocd_secret {
        router = router.merge(
            Router::new()
                .route(ARGOCD_PATH, post(argocd_hook))
                .with_state(state(s)),
        );
    }
    if let Some(s) = &config.checks_secret {
        router = router.merge(
            Router::new()
                .route(CHECKS_PATH, post(checks_hook))
                .with_state(state(s)),
        );
    }
    if let Some(s) = &config.generic_secret {
        router = router.merge(
            Router::new()
                .route(GENERIC_PATH, post(generic_hook))
                .with_state(state(s)),
        );
    }
    router
}

type Reply = (StatusCode, Json<serde_json::Value>);

fn reply(code: StatusCode, message: impl Into<String>) -> Reply {
    (code, Json(json!({ "message": message.into() })))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn github_hook(State(s): State<HookState>, headers: HeaderMap, body: Bytes) -> Reply {
    if let Err(why) = github::verify(
        s.secret.expose_secret().as_bytes(),
        &body,
        header(&headers, "X-Hub-Signature-256"),
    ) {
        tracing::warn!(%why, "GitHub hook refused: bad signature");
        return reply(StatusCode::UNAUTHORIZED, why.to_string());
    }
    let Some(event) = header(&headers, "X-GitHub-Event") else {
        return reply(StatusCode::BAD_REQUEST, "no X-GitHub-Event header");
    };
    let delivery_id = match header(&headers, "X-GitHub-Delivery") {
        Some(d) if !d.is_empty() && d.len() <= 100 => d.to_owned(),
        _ => return reply(StatusCode::BAD_REQUEST, "no X-GitHub-Delivery header"),
    };
    let parsed = match github::parse(event, &body) {
        Ok(e) => e,
        Err(e) => {
            tracing::info!(error = %shorten(&e.to_string()), "GitHub hook: unreadable payload");
            return reply(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    // A CI run on the default branch is the `ci-passing` check's news.
    if let Some((repo, passed, detail)) =
        github::ci_result(&parsed, &s.scorecards.config().ci_workflow)
    {
        if let Err(e) = s
            .scorecards
            .record_ci(&repo, passed, &detail, "github")
            .await
        {
            tracing::error!(error = %e, "recording a CI result failed");
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not be handled now; try again",
            );
        }
    }
    match github::delivery(parsed, &delivery_id) {
        Some(d) => take(&s.notify, d).await,
        None => reply(
            StatusCode::OK,
            format!(
                "{} event acknowledged; it says nothing about a deploy",
                shorten(event)
            ),
        ),
    }
}

async fn argocd_hook(State(s): State<HookState>, headers: HeaderMap, body: Bytes) -> Reply {
    if !argocd_authorized(&headers, &s.secret) {
        tracing::warn!("Argo CD hook refused: missing or wrong shared secret");
        return reply(
            StatusCode::UNAUTHORIZED,
            "send the shared secret as Authorization: Bearer <hooks.argocd_secret> (or as the basic-auth password)",
        );
    }
    match argocd::parse(&body) {
        Ok(Some(d)) => take(&s.notify, d).await,
        Ok(None) => reply(StatusCode::OK, "acknowledged; nothing to tell yet"),
        Err(e) => {
            tracing::info!(error = %shorten(&e.to_string()), "Argo CD hook: unreadable payload");
            reply(StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

/// `Authorization: Bearer <secret>`, or basic auth with the secret as the
/// password (any user name): what Argo CD's webhook service can send.
fn argocd_authorized(headers: &HeaderMap, secret: &SecretString) -> bool {
    use base64::Engine;
    let Some(auth) = header(headers, "Authorization") else {
        return false;
    };
    let given: Vec<u8> = if let Some(token) = auth.strip_prefix("Bearer ") {
        token.trim().as_bytes().to_vec()
    } else if let Some(b64) = auth.strip_prefix("Basic ") {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        match raw.iter().position(|b| *b == b':') {
            Some(i) => raw[i + 1..].to_vec(),
            None => return false,
        }
    } else {
        return false;
    };
    let want = secret.expose_secret().as_bytes();
    // ct_eq on slices of different lengths is false without comparing;
    // the length of a secret is not worth hiding.
    bool::from(given.as_slice().ct_eq(want))
}

/// A signed hook (`X-Paver-Timestamp`, `X-Paver-Signature`) for `path`:
/// the signature, refused when it does not verify or was used before.
async fn signed(
    s: &HookState,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, Reply> {
    let req = CallbackRequest {
        timestamp: header(headers, TIMESTAMP_HEADER).unwrap_or(""),
        signature: header(headers, SIGNATURE_HEADER).unwrap_or(""),
        method: "POST",
        body,
    };
    let now = chrono::Utc::now().timestamp();
    let signature = verify_callback(
        s.secret.expose_secret(),
        &req,
        &[path],
        now,
        s.tolerance_secs,
    )
    .map_err(|why| {
        tracing::warn!(%path, %why, "hook refused: bad signature");
        reply(StatusCode::UNAUTHORIZED, why.to_string())
    })?;
    match s.db.callback_replay().first_use(&signature).await {
        Ok(true) => Ok(signature),
        Ok(false) => {
            tracing::warn!(%path, "hook refused: replayed signature");
            Err(reply(
                StatusCode::CONFLICT,
                "this hook was already received (replayed signature)",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "checking a hook for replay failed");
            Err(reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; try again",
            ))
        }
    }
}

/// CI reports a scorecard check only it knows (`ci-passing`, a configured
/// `pushed` check).
async fn checks_hook(State(s): State<HookState>, headers: HeaderMap, body: Bytes) -> Reply {
    let signature = match signed(&s, CHECKS_PATH, &headers, &body).await {
        Ok(sig) => sig,
        Err(refused) => return refused,
    };
    let result = match checks::parse(&body) {
        Ok(r) => r,
        Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match s.scorecards.push(result).await {
        Ok(()) => reply(StatusCode::ACCEPTED, "recorded"),
        Err(e @ (ScorecardError::UnknownService(_) | ScorecardError::UnknownCheck(_))) => {
            reply(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "recording a pushed check failed");
            let _ = s.db.callback_replay().forget(&signature).await;
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not be handled now; try again",
            )
        }
    }
}

async fn generic_hook(State(s): State<HookState>, headers: HeaderMap, body: Bytes) -> Reply {
    let signature = match signed(&s, GENERIC_PATH, &headers, &body).await {
        Ok(sig) => sig,
        Err(refused) => return refused,
    };
    let delivery = match generic::parse(&body) {
        Ok(d) => d,
        Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let answer = take(&s.notify, delivery).await;
    if answer.0 == StatusCode::SERVICE_UNAVAILABLE {
        // Not taken: the sender's retry (same signature, while fresh) must be.
        let _ = s.db.callback_replay().forget(&signature).await;
    }
    answer
}

/// Hands a delivery to the notification flow and answers by its outcome.
async fn take(notify: &Notifications, d: Delivery) -> Reply {
    let source = d.source;
    match notify.handle(d).await {
        Ok(Outcome::Told { notice, new }) => reply(
            StatusCode::ACCEPTED,
            format!("{} notice {notice}", if new { "posted" } else { "updated" }),
        ),
        Ok(Outcome::Quiet) if !notify.can_tell() => reply(
            StatusCode::ACCEPTED,
            "recorded; no chat platform (Slack, Discord) is configured to tell anyone",
        ),
        Ok(Outcome::Quiet) => reply(StatusCode::ACCEPTED, "recorded; no channel wants this one"),
        Ok(Outcome::UnknownService(name)) => reply(
            StatusCode::ACCEPTED,
            format!("recorded; no catalog service matches {:?}", shorten(&name)),
        ),
        Ok(Outcome::UnknownEnvironment(env)) => reply(
            StatusCode::ACCEPTED,
            format!(
                "ignored; {:?} is not an environment Paver knows",
                shorten(&env)
            ),
        ),
        Ok(Outcome::Duplicate) => reply(StatusCode::OK, "already received"),
        Err(e @ NotifyError::Contended(_)) => {
            tracing::warn!(source = source.as_str(), error = %e, "a deploy hook could not be handled");
            reply(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(e @ NotifyError::Storage(_)) => {
            // The database's words stay in the log.
            tracing::error!(source = source.as_str(), error = %e, "a deploy hook could not be handled");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not be handled now; try again",
            )
        }
    }
}

/// JSON into `T`; the error names the field (`deployment.environment:
/// missing field`), as a 400 must.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

/// Someone else's text, fit for a notice: one line, shortened, markup
/// neutralised; nothing when blank.
pub(crate) fn text(s: &str) -> Option<String> {
    let t = shorten(s);
    (!t.trim().is_empty()).then_some(t)
}

/// A link worth showing: http or https, of a sane length. Anything else
/// (`javascript:`, a relative path, a Slack `<!here|x>` smuggled in) is dropped.
pub(crate) fn web_url(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 2_000 {
        return None;
    }
    let url = url::Url::parse(s).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    // The parsed form (escaped, so nothing in it can close a chat link),
    // without the "/" parsing adds to a bare host.
    let mut out = url.to_string();
    if url.path() == "/" && !s.ends_with('/') && url.query().is_none() && url.fragment().is_none() {
        out.pop();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_links_are_shown() {
        assert_eq!(
            web_url(" https://a.example/x?y=1 ").as_deref(),
            Some("https://a.example/x?y=1")
        );
        for bad in [
            "javascript:alert(1)",
            "/relative",
            "ftp://a.example",
            "<!here>",
            "https://",
        ] {
            assert_eq!(web_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn argo_cd_authenticates_by_bearer_token_or_basic_password() {
        use base64::Engine;
        let secret = SecretString::from("s3cr3t".to_owned());
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("Authorization", v.parse().unwrap());
            h
        };
        let basic = |up: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(up)
            )
        };
        assert!(argocd_authorized(&with("Bearer s3cr3t"), &secret));
        assert!(argocd_authorized(&with(&basic("argocd:s3cr3t")), &secret));
        assert!(!argocd_authorized(&with("Bearer s3cr3"), &secret));
        assert!(!argocd_authorized(&with("Bearer s3cr3t!"), &secret));
        assert!(!argocd_authorized(&with(&basic("s3cr3t")), &secret));
        assert!(!argocd_authorized(&with("s3cr3t"), &secret));
        assert!(!argocd_authorized(&HeaderMap::new(), &secret));
    }
}
