//! One template syntax for everything a person writes for Paver to fill:
//! URL templates in the config, LLM prompts, message templates. It is
//! minijinja's (`{{ service }}`, filters such as `{{ service | urlencode }}`,
//! and Paver's own `{{ service | segment }}`, which encodes a value as one
//! URL path segment: `/` included).
//!
//! Undefined names are errors, so a typo in a config template is found when
//! the template is checked, not by a user clicking a broken link. Values are
//! inserted as text and never parsed again: user text holding `{{ … }}`
//! stays as it is.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};

/// A template that did not parse, or named something it was not given.
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {detail}")]
pub struct TemplateError {
    pub name: String,
    pub detail: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Nothing Paver fills is HTML; escaping would corrupt URLs and prompts.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.add_filter("segment", |v: String| {
        percent_encoding::utf8_percent_encode(&v, SEGMENT).to_string()
    });
    env
}

/// What `segment` encodes: everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `template` filled with `vars`. `name` says which template failed.
pub fn render(name: &str, template: &str, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
    let ctx: BTreeMap<&str, &str> = vars.iter().copied().collect();
    environment()
        .render_str(template, ctx)
        .map_err(|e| TemplateError {
            name: name.to_owned(),
            detail: e.to_string(),
        })
}

/// Checks that `template` parses and uses only `allowed` names, at load
/// time, with the names filled by placeholders.
pub fn check(name: &str, template: &str, allowed: &[&str]) -> Result<(), TemplateError> {
    let vars: Vec<(&str, &str)> = allowed.iter().map(|k| (*k, "x")).collect();
    render(name, template, &vars).map(|_| ()).map_err(|mut e| {
        // minijinja says "undefined value" without the name: say which.
        let unknown = unknown_names(template, allowed);
        if !unknown.is_empty() {
            e.detail = format!(
                "{} (not known here: {}; known: {})",
                e.detail,
                unknown.join(", "),
                allowed.join(", ")
            );
        }
        e
    })
}

/// The names `template` uses that are not in `allowed`, sorted; none when
/// it does not parse.
fn unknown_names(template: &str, allowed: &[&str]) -> Vec<String> {
    let env = environment();
    let Ok(t) = env.template_from_str(template) else {
        return Vec::new();
    };
    let mut out: Vec<String> = t
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !allowed.contains(&v.as_str()))
        .collect();
    out.sort();
    out
}

/// `template` with the old single-brace placeholders (`{service}`) of
/// `names` rewritten into this syntax (`{{ service }}`), or `None` when it
/// has none. Minijinja's own tags and braces around other words are kept
/// as they are. For configurations written before templates were minijinja.
pub fn upgrade_legacy(template: &str, names: &[&str]) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 8);
    let mut rest = template;
    let mut changed = false;
    while let Some(i) = rest.find('{') {
        let (before, at) = rest.split_at(i);
        out.push_str(before);
        let close = match at.get(..2) {
            Some("{{") => Some("}}"),
            Some("{%") => Some("%}"),
            Some("{#") => Some("#}"),
            _ => None,
        };
        if let Some(close) = close {
            let end = at[2..].find(close).map_or(at.len(), |j| j + 4);
            out.push_str(&at[..end]);
            rest = &at[end..];
            continue;
        }
        let name = names
            .iter()
            .find(|n| at[1..].starts_with(**n) && at[1 + n.len()..].starts_with('}'));
        match name {
            Some(name) => {
                out.push_str(&format!("{{{{ {name} }}}}"));
                rest = &at[name.len() + 2..];
                changed = true;
            }
            None => {
                out.push('{');
                rest = &at[1..];
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Whether `template` uses `name` (its output changes with the value).
pub fn uses(template: &str, name: &str, allowed: &[&str]) -> bool {
    let with = |value: &str| {
        let vars: Vec<(&str, &str)> = allowed
            .iter()
            .map(|k| (*k, if *k == name { value } else { "x" }))
            .collect();
        render("", template, &vars).ok()
    };
    with("a") != with("b")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_once_and_refuses_unknown_names() {
        assert_eq!(
            render(
                "t",
                "https://{{ service }}.{{env}}.example/",
                &[("service", "a"), ("env", "b")]
            )
            .unwrap(),
            "https://a.b.example/"
        );
        // User text is inserted, never expanded.
        assert_eq!(
            render("t", "Said: {{ message }}", &[("message", "{{ service }}")]).unwrap(),
            "Said: {{ service }}"
        );
        assert_eq!(
            render(
                "t",
                "{{ s | urlencode }}/{{ s | segment }}",
                &[("s", "a b/c")]
            )
            .unwrap(),
            "a%20b/c/a%20b%2Fc"
        );
        let e = check(
            "drivers.url_template",
            "https://{{ servce }}/",
            &["service"],
        )
        .unwrap_err();
        assert!(e.to_string().contains("drivers.url_template"), "{e}");
        assert!(e.to_string().contains("not known here: servce"), "{e}");
        assert!(check("t", "{{ unclosed", &[]).is_err());
        assert_eq!(render("t", "<&>\n", &[]).unwrap(), "<&>\n");
    }

    #[test]
    fn upgrades_single_brace_placeholders() {
        let names = ["service", "environment", "owner", "owner_ref"];
        assert_eq!(
            upgrade_legacy("https://{service}.{environment}.x/{other}", &names).as_deref(),
            Some("https://{{ service }}.{{ environment }}.x/{other}")
        );
        assert_eq!(
            upgrade_legacy("{owner_ref}/{owner}", &names).as_deref(),
            Some("{{ owner_ref }}/{{ owner }}")
        );
        assert_eq!(
            upgrade_legacy("{{ service }}-{environment}", &names).as_deref(),
            Some("{{ service }}-{{ environment }}")
        );
        assert_eq!(upgrade_legacy("{{ service | segment }}", &names), None);
        assert_eq!(upgrade_legacy("plain {", &names), None);
        assert!(uses("{{ service }}-x", "service", &names));
        assert!(!uses("{{ environment }}", "service", &names));
    }
}
