//! The templates of the driver sections (`gitops.url_template`,
//! `argocd.app_name_template`, `[backstage.scaffold_values]`, …): which
//! names each may use, reading the old single-brace syntax, checking them
//! at load and filling them. The syntax is [`crate::util::template`]'s.

pub use crate::util::template;

/// `gitops.url_template`.
pub const URL: &[&str] = &["service", "environment"];
/// `argocd.app_name_template`, and a template in the catalog's
/// `argocd/app-name` annotation.
pub const APP_NAME: &[&str] = &["app", "service", "environment"];
/// `argocd.revision_template`.
pub const REVISION: &[&str] = &["version"];
/// `[backstage.scaffold_values]`.
pub const SCAFFOLD_VALUES: &[&str] = &[
    "requester",
    "request_id",
    "idempotency_key",
    "expires_at",
    "name",
    "template",
    "owner",
    "owner_ref",
];
/// `[backstage.environment_values]`.
pub const ENVIRONMENT_VALUES: &[&str] = &[
    "requester",
    "request_id",
    "idempotency_key",
    "expires_at",
    "service",
    "environment",
    "resources",
    "sizes",
    "owner",
    "owner_ref",
];

/// Rewrites the old `{name}` placeholders of `value` (the `key` of the
/// configuration) into `{{ name }}`, saying so: deployed configurations
/// keep working, and their owners learn to update them.
pub fn upgrade(key: &str, value: &mut String, names: &[&str]) {
    if let Some(new) = template::upgrade_legacy(value, names) {
        tracing::warn!(
            "{key}: `{value}` uses the old single-brace placeholders; read as `{new}` (write it so)"
        );
        *value = new;
    }
}

/// A problem line when `value` does not parse or names something other
/// than `names`.
pub fn problem(key: &str, value: &str, names: &[&str]) -> Option<String> {
    template::check(key, value, names).err().map(|e| {
        format!(
            "{key}: {} (it may use {})",
            e.detail,
            names
                .iter()
                .map(|n| format!("{{{{ {n} }}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Whether `value` uses any of `wanted` (given it may use `names`).
pub fn uses_any(value: &str, wanted: &[&str], names: &[&str]) -> bool {
    wanted.iter().any(|w| template::uses(value, w, names))
}

/// `value` filled with `vars`; `key` names the template in the error.
pub fn fill(
    key: &str,
    value: &str,
    vars: &[(&str, &str)],
) -> Result<String, template::TemplateError> {
    template::render(key, value, vars)
}
