//! What the HTTP drivers share: one way to build a client, to join URLs,
//! and to tell a transient failure (timeouts, 5xx, 429) from a permanent
//! one (other 4xx, validation), with the remote system's own message.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::DriverError;

/// The longest remote message shown in a thread.
const MAX_MESSAGE: usize = 500;

/// A client with a connect timeout; each request sets its own total timeout
/// (a long event stream must not be cut by a global one).
pub fn client(connect_timeout: Duration) -> Result<reqwest::Client, DriverError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!("paver/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DriverError::Permanent(format!("cannot build an HTTP client: {e}")))
}

/// `base` + `path`, keeping any path prefix of `base` (a Backstage behind
/// `/portal`, an Argo CD under `/argocd`).
pub fn join(base: &url::Url, path: &str) -> String {
    format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// A failure to talk to `system` at all: timeouts and connection errors are
/// worth retrying; a request that could not even be built is not.
pub fn transport(system: &str, e: reqwest::Error) -> DriverError {
    if e.is_builder() {
        return DriverError::Permanent(format!("{system}: bad request: {e}"));
    }
    if e.is_decode() {
        return DriverError::Permanent(format!("{system}: unreadable answer: {e}"));
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "unreachable"
    } else {
        "connection failed"
    };
    DriverError::Transient(format!("{system} {what}: {}", root_cause(&e)))
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
    let message = remote_message(body);
    let text = if message.is_empty() {
        format!("{system} answered {status}")
    } else {
        format!("{system} answered {status}: {message}")
    };
    if is_transient(status) {
        DriverError::Transient(text)
    } else {
        DriverError::Permanent(text)
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

/// One line, at most [`MAX_MESSAGE`] characters.
pub fn shorten(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= MAX_MESSAGE {
        one
    } else {
        let cut: String = one.chars().take(MAX_MESSAGE).collect();
        format!("{cut}…")
    }
}

/// Reads a response: the JSON body on success, the classified error otherwise.
pub async fn json(system: &str, resp: reqwest::Response) -> Result<Value, DriverError> {
    let status = resp.status();
    let body = resp.text().await.map_err(|e| transport(system, e))?;
    if !status.is_success() {
        return Err(status_error(system, status, &body));
    }
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body).map_err(|e| {
        DriverError::Permanent(format!(
            "{system}: answer is not JSON ({e}): {}",
            shorten(&body)
        ))
    })
}

/// Replaces `{key}` placeholders.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses_and_finds_messages() {
        let e = status_error(
            "Argo CD",
            StatusCode::BAD_REQUEST,
            r#"{"error":"x","code":3,"message":"application spec is invalid"}"#,
        );
        assert_eq!(
            e,
            DriverError::Permanent(
                "Argo CD answered 400 Bad Request: application spec is invalid".into()
            )
        );
        assert!(matches!(
            status_error("x", StatusCode::SERVICE_UNAVAILABLE, ""),
            DriverError::Transient(_)
        ));
        assert!(matches!(
            status_error("x", StatusCode::TOO_MANY_REQUESTS, "slow down"),
            DriverError::Transient(m) if m.ends_with("slow down")
        ));
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
    fn joins_and_fills() {
        let base = url::Url::parse("http://127.0.0.1:7007/portal/").unwrap();
        assert_eq!(
            join(&base, "/api/scaffolder/v2/tasks"),
            "http://127.0.0.1:7007/portal/api/scaffolder/v2/tasks"
        );
        assert_eq!(
            fill(
                "{service}-{environment}",
                &[("service", "a"), ("environment", "dev")]
            ),
            "a-dev"
        );
    }
}
