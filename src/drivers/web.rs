//! What the HTTP drivers share: one way to build a client, to build URLs
//! from percent-encoded path segments, to read a bounded body, to tell a
//! transient failure (timeouts, 5xx, 429) from a permanent one (other 4xx,
//! validation), and to make the remote system's own message safe to show
//! in chat.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::DriverError;
#[cfg(test)]
use super::Recovery;

/// The default cap on a response body: far above any answer the drivers
/// expect, far below what would hurt the process.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A client with a connect timeout; each request sets its own total timeout
/// (a long event stream must not be cut by a global one). Redirects are
/// followed only within the origin of the request: a redirect must not
/// carry a signed request or a token to another host.
pub fn client(connect_timeout: Duration) -> Result<reqwest::Client, DriverError> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let first = attempt.previous().first().map(|u| u.origin());
        if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else if first.as_ref() != Some(&attempt.url().origin()) {
            attempt.error("refused a redirect to another origin")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(policy)
        .user_agent(concat!("paver/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DriverError::Config(format!("cannot build an HTTP client: {e}")))
}

/// `base` with `segments` appended, each percent-encoded as one path
/// segment (a `/`, `?`, `#` or `%` in a name stays inside its segment),
/// keeping any path prefix of `base` (a Backstage behind `/portal`, an
/// Argo CD under `/argocd`). An empty, `.` or `..` segment is refused: URL
/// normalisation would drop or resolve it and the request would reach
/// another resource.
pub fn endpoint(base: &url::Url, segments: &[&str]) -> Result<url::Url, DriverError> {
    if let Some(bad) = segments
        .iter()
        .find(|s| s.is_empty() || **s == "." || **s == "..")
    {
        return Err(DriverError::Refused(format!(
            "refusing a URL with the path segment {:?}",
            clean(bad)
        )));
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut()
        .map_err(|_| DriverError::Config(format!("{} cannot be a base URL", clean(base.as_str()))))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Reads a response body, at most `max` bytes: a declared length past the
/// cap is refused before reading, and the body is read in chunks and
/// dropped as soon as it grows past the cap (no unbounded buffer).
pub async fn body(
    system: &str,
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, DriverError> {
    let too_big = || {
        DriverError::Malformed(format!(
            "{system} answered with a body larger than {max} bytes; refused"
        ))
    };
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport(system, e))? {
        if out.len() + chunk.len() > max {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// [`body`] as text (lossy UTF-8).
pub async fn text(
    system: &str,
    resp: reqwest::Response,
    max: usize,
) -> Result<String, DriverError> {
    let raw = body(system, resp, max).await?;
    Ok(String::from_utf8(raw)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// A failure to talk to `system` at all: timeouts and connection errors are
/// worth retrying; a request that could not even be built is not.
pub fn transport(system: &str, e: reqwest::Error) -> DriverError {
    if e.is_builder() {
        return DriverError::Config(format!("{system}: bad request: {e}"));
    }
    if e.is_decode() {
        return DriverError::Malformed(format!("{system}: unreadable answer: {e}"));
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "unreachable"
    } else {
        "connection failed"
    };
    DriverError::Unreachable(format!("{system} {what}: {}", shorten(&root_cause(&e))))
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Whether an HTTP status is worth retrying.
pub fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.as_u16() == 425
}

/// The error for a non-success answer, with the remote message.
pub fn status_error(system: &str, status: StatusCode, body: &str) -> DriverError {
    DriverError::Status {
        system: system.to_owned(),
        status,
        message: remote_message(body),
    }
}

/// The human part of an error body: `message`, `error.message`, `error`,
/// `errors[].message` (Backstage validation), or the text itself.
pub fn remote_message(body: &str) -> String {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(v) => json_message(&v).unwrap_or_default(),
        Err(_) => body.trim().to_owned(),
    };
    shorten(&text)
}

fn json_message(v: &Value) -> Option<String> {
    if let Some(errors) = v.get("errors").and_then(Value::as_array) {
        let all: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                let m = e.get("message").and_then(Value::as_str)?;
                let prop = e
                    .get("property")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty());
                Some(match prop {
                    Some(p) => format!("{p} {m}"),
                    None => m.to_owned(),
                })
            })
            .collect();
        if !all.is_empty() {
            return Some(all.join("; "));
        }
    }
    if let Some(m) = v.get("message").and_then(Value::as_str) {
        return Some(m.to_owned());
    }
    match v.get("error") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(e @ Value::Object(_)) => e.get("message").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

pub use crate::util::text::{clean, shorten};

/// Reads a response: the JSON body on success, the classified error
/// otherwise. The body is read up to `max` bytes (see [`body`]).
pub async fn json_capped(
    system: &str,
    resp: reqwest::Response,
    max: usize,
) -> Result<Value, DriverError> {
    let status = resp.status();
    let body = text(system, resp, max).await?;
    if !status.is_success() {
        return Err(status_error(system, status, &body));
    }
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body).map_err(|e| {
        DriverError::Malformed(format!(
            "{system}: answer is not JSON ({e}): {}",
            shorten(&body)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::text::MAX_MESSAGE;

    #[test]
    fn classifies_statuses_and_finds_messages() {
        let e = status_error(
            "Argo CD",
            StatusCode::BAD_REQUEST,
            r#"{"error":"x","code":3,"message":"application spec is invalid"}"#,
        );
        assert_eq!(
            e.to_string(),
            "Argo CD answered 400 Bad Request: application spec is invalid"
        );
        assert_eq!(e.recovery(), Recovery::RetryButton);
        let e = status_error("x", StatusCode::SERVICE_UNAVAILABLE, "");
        assert_eq!(e.to_string(), "x answered 503 Service Unavailable");
        assert!(e.is_transient());
        let e = status_error("x", StatusCode::TOO_MANY_REQUESTS, "slow down");
        assert!(e.is_transient() && e.to_string().ends_with("slow down"));
        assert_eq!(
            remote_message(
                r#"{"errors":[{"property":"instance.values","message":"requires property \"name\""}]}"#
            ),
            "instance.values requires property \"name\""
        );
        assert_eq!(
            remote_message(r#"{"error":{"name":"NotFoundError","message":"no template"}}"#),
            "no template"
        );
        assert_eq!(shorten(&"a ".repeat(600)).chars().count(), MAX_MESSAGE + 1);
    }

    #[test]
    fn remote_text_is_one_short_line_without_chat_markup() {
        let raw = "<!channel> @everyone see `rm -rf` &amp; <@U123|x>\n\nline two\u{7}";
        let s = shorten(raw);
        for bad in ['<', '>', '&', '`', '\n', '\u{7}'] {
            assert!(!s.contains(bad), "{bad:?} in {s}");
        }
        assert!(!s.contains("@everyone"), "{s}");
        assert!(s.contains("line two"), "{s}");
        assert!(shorten(&"x".repeat(5000)).chars().count() <= MAX_MESSAGE + 1);
    }

    #[test]
    fn encodes_each_segment() {
        let base = url::Url::parse("http://127.0.0.1:7007/portal/").unwrap();
        assert_eq!(
            endpoint(&base, &["api", "scaffolder", "v2", "tasks"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:7007/portal/api/scaffolder/v2/tasks"
        );
        let bare = url::Url::parse("http://127.0.0.1:7007").unwrap();
        assert_eq!(
            endpoint(&bare, &["applications", "a/b?c=%d#e f"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:7007/applications/a%2Fb%3Fc=%25d%23e%20f"
        );
        for bad in ["..", ".", ""] {
            assert!(matches!(
                endpoint(&bare, &["api", bad]),
                Err(DriverError::Refused(_))
            ));
        }
    }
}
