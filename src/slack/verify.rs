//! Slack request signing (v0): HMAC-SHA256 over `v0:{timestamp}:{raw body}`
//! with the signing secret, compared in constant time; and [`signed`], the
//! layer that checks it on every Slack HTTP route.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Requests older (or newer) than this are refused, so a captured request
/// cannot be replayed later.
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing X-Slack-Signature or X-Slack-Request-Timestamp")]
    Missing,
    #[error("the timestamp is not a number")]
    BadTimestamp,
    #[error("the timestamp is {0} s away from now (more than 5 minutes)")]
    Stale(i64),
    #[error("the signature does not match")]
    Mismatch,
}

pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    given: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), VerifyError> {
    let (Some(timestamp), Some(given)) = (timestamp, given) else {
        return Err(VerifyError::Missing);
    };
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = (now_secs - ts).abs();
    if skew > MAX_SKEW_SECS {
        return Err(VerifyError::Stale(skew));
    }
    let expected = signature(secret, timestamp.trim(), body);
    if expected.as_bytes().ct_eq(given.trim().as_bytes()).into() {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Every Slack HTTP request must carry a valid signature; anything else is
/// a 401, a warning in the log, and nothing more. The handlers behind it
/// get the very body that was signed.
pub async fn signed(
    State(secret): State<Option<SecretString>>,
    req: Request,
    next: Next,
) -> Response {
    let refused = || (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    let Some(secret) = secret else {
        tracing::warn!("Slack HTTP request refused: no signing secret is configured");
        return refused();
    };
    let (parts, body) = req.into_parts();
    // Read with the Bytes extractor's own limit, as the handlers did.
    let body = match Bytes::from_request(Request::new(body), &()).await {
        Ok(b) => b,
        Err(rejection) => return rejection.into_response(),
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = verify(
        secret.expose_secret().as_bytes(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &body,
        chrono::Utc::now().timestamp(),
    ) {
        tracing::warn!(error = %e, "Slack request with a bad signature refused");
        return refused();
    }
    next.run(Request::from_parts(parts, Body::from(body))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The published vectors (python-slack-sdk and slack-morphism tests).
    #[test]
    fn published_vectors() {
        for file in [
            "../shared/corpus/slack/signature_test_vector.json",
            "../shared/corpus/slack/signature_test_vector_slack_morphism.json",
        ] {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
            let pick = |keys: &[&str]| {
                keys.iter()
                    .find_map(|k| v.get(*k).and_then(Value::as_str))
                    .unwrap_or_else(|| panic!("{file}: none of {keys:?} in {v}"))
                    .to_owned()
            };
            let secret = pick(&["signing_secret", "secret"]);
            let body = pick(&["body", "request_body"]);
            let ts = match v.get("timestamp") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => pick(&["ts"]),
            };
            let expected = pick(&["valid_signature", "expected_signature", "signature"]);
            assert_eq!(
                signature(secret.as_bytes(), &ts, body.as_bytes()),
                expected,
                "{file}"
            );
            let now: i64 = ts.parse().unwrap();
            assert_eq!(
                verify(
                    secret.as_bytes(),
                    Some(&ts),
                    Some(&expected),
                    body.as_bytes(),
                    now
                ),
                Ok(())
            );
            assert_eq!(
                verify(
                    secret.as_bytes(),
                    Some(&ts),
                    Some(&expected),
                    b"tampered",
                    now
                ),
                Err(VerifyError::Mismatch)
            );
            assert!(matches!(
                verify(
                    secret.as_bytes(),
                    Some(&ts),
                    Some(&expected),
                    body.as_bytes(),
                    now + 301
                ),
                Err(VerifyError::Stale(_))
            ));
        }
    }

    #[test]
    fn missing_and_malformed_headers() {
        assert_eq!(
            verify(b"s", None, Some("v0=x"), b"", 0),
            Err(VerifyError::Missing)
        );
        assert_eq!(
            verify(b"s", Some("1"), None, b"", 0),
            Err(VerifyError::Missing)
        );
        assert_eq!(
            verify(b"s", Some("soon"), Some("v0=x"), b"", 0),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(b"s", Some("0"), Some("v0=short"), b"", 0),
            Err(VerifyError::Mismatch)
        );
    }
}
