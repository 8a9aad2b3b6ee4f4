//! Secrets out of URLs before a URL is shown or logged.

use url::Url;

/// Hides the secrets of a URL before it is shown anywhere: the password of
/// its user info (`postgres://user:***@host/db`) and query parameters
/// naming a password (`?password=***`, `sslpassword=***`). A URL that does
/// not parse is still redacted, by its shape.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let head = match Url::parse(head) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => head.to_owned(),
        Err(_) => redact_userinfo(head),
    };
    match query {
        None => head,
        Some(q) => {
            let params: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                        format!("{k}=***")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            format!("{head}?{}", params.join("&"))
        }
    }
}

/// `scheme://user:secret@rest` without a URL parser: what follows the
/// first `:` of the user info, up to the last `@`, is hidden (a password
/// may hold `/`, `#` or `@` unescaped, which is also why the parse failed).
fn redact_userinfo(s: &str) -> String {
    let Some(start) = s.find("://").map(|i| i + 3) else {
        return s.to_owned();
    };
    let rest = &s[start..];
    let Some(at) = rest.rfind('@') else {
        return s.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!("{}{}:***{}", &s[..start], &rest[..colon], &rest[at..]),
        None => s.to_owned(),
    }
}

/// Free text (an error a driver returned, a reason) with its secrets
/// hidden before it leaves Paver: each URL's password as [`redact_url`]
/// hides it, the credential after `Bearer`/`Basic`, and Slack tokens
/// (`xoxb-…`, `xapp-…`).
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut hide_next = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let bare = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if hide_next && !bare.is_empty() {
            out.push_str("***");
            hide_next = false;
            continue;
        }
        hide_next = bare.eq_ignore_ascii_case("bearer") || bare.eq_ignore_ascii_case("basic");
        let slack = ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxe-", "xapp-"]
            .iter()
            .any(|p| word.contains(p));
        if slack {
            out.push_str("***");
        } else if word.contains("://") {
            out.push_str(&redact_url(word));
        } else {
            out.push_str(word);
        }
    }
    out
}

/// Whether a URL carries a password (in its user info or its query).
pub fn url_has_password(url: &str) -> bool {
    redact_url(url) != url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_database_passwords() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact_url("postgres://u@h/db?sslmode=require&password=pw&PassWord=x"),
            "postgres://u@h/db?sslmode=require&password=***&PassWord=***"
        );
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db?sslpassword=k"),
            "postgres://u:***@h:5432/db?sslpassword=***"
        );
        // A password the URL parser chokes on is still hidden.
        assert_eq!(
            redact_url("postgres://u:p/a#s@s@h/db"),
            "postgres://u:***@h/db"
        );
        for plain in [
            "sqlite://var/paver.db",
            "postgres://u@h/db",
            "sqlite::memory:",
            "postgres://h/db?sslmode=require",
        ] {
            assert_eq!(redact_url(plain), plain);
            assert!(!url_has_password(plain));
        }
    }

    #[test]
    fn text_keeps_its_words_and_loses_its_secrets() {
        assert_eq!(
            redact_text("cannot reach https://bot:hunter2@git.example.com/x.git: 401"),
            "cannot reach https://bot:***@git.example.com/x.git: 401"
        );
        assert_eq!(
            redact_text("sent Authorization: Bearer abc.def (refused)"),
            "sent Authorization: Bearer *** (refused)"
        );
        assert_eq!(redact_text("token xoxb-1-2-3 revoked"), "token *** revoked");
        let plain = "Created staging for order-service: https://stg.example.com/x";
        assert_eq!(redact_text(plain), plain);
    }
}
