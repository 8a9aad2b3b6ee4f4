//! `[scorecards]`: the docs' links, the built-in checks' knobs, and the
//! checks a platform team adds of its own.

use serde::Deserialize;

use crate::domain::scorecard::Weight;

/// A weight as configured (`critical`, `high`, `medium`, `low`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct WeightName(pub Weight);

impl TryFrom<String> for WeightName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Weight::parse(&value)
            .map(WeightName)
            .ok_or_else(|| format!("`{value}` is not a weight (critical, high, medium, low)"))
    }
}

/// A regular expression as configured; checked when the config loads.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Pattern(pub regex::Regex);

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        regex::Regex::new(&value)
            .map(Pattern)
            .map_err(|e| format!("`{value}` is not a regular expression: {e}"))
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// The catalog fields a `field` check may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogField {
    Owner,
    Lifecycle,
    System,
    Description,
    Title,
    Type,
}

/// What a configured check looks at.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// The annotation exists (and matches `pattern`, when given).
    Annotation {
        key: String,
        #[serde(default)]
        pattern: Option<Pattern>,
    },
    /// A catalog field is set (and matches `pattern`).
    Field {
        field: CatalogField,
        #[serde(default)]
        pattern: Option<Pattern>,
    },
    /// A tag is present: one matching `pattern`.
    Tag { pattern: Pattern },
    /// GET `url` (`{{ service }}`, `{{ owner }}` filled in) answers
    /// `status` (default 200) and, when `pointer` is given, has `equals`
    /// (or any non-null value) at that JSON pointer.
    Http {
        url: String,
        #[serde(default)]
        status: Option<u16>,
        #[serde(default)]
        pointer: Option<String>,
        #[serde(default)]
        equals: Option<String>,
    },
    /// Only what CI pushes to `POST /hooks/checks`.
    Pushed,
}

/// A check of the platform team's own.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomCheck {
    pub name: String,
    pub weight: WeightName,
    /// One line: what to do when it fails.
    pub help: String,
    #[serde(default)]
    pub fix_url: Option<String>,
    /// Only services whose `spec.lifecycle` is one of these (empty: all).
    #[serde(default)]
    pub lifecycles: Vec<String>,
    pub rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScorecardsConfig {
    /// The "how to fix" link of a built-in check; `{{ check }}` is its name.
    pub fix_url: String,
    /// `ci-passing` needs a CI result this recent.
    pub ci_max_age_days: u64,
    /// The GitHub workflow whose runs on the default branch are
    /// `ci-passing` (by name, any case); CI may also push the result.
    pub ci_workflow: String,
    /// `has-cost-tags` looks for this annotation.
    pub cost_center_annotation: String,
    /// `has-backups`: the least retention a database's backups may have.
    pub min_backup_retention_days: u32,
    /// Time limit of one HTTP check, in seconds.
    pub http_timeout_secs: u64,
    pub checks: Vec<CustomCheck>,
}

impl Default for ScorecardsConfig {
    fn default() -> Self {
        ScorecardsConfig {
            fix_url: "https://docs.example.internal/governance/scorecards/#{{ check }}".into(),
            ci_max_age_days: 30,
            ci_workflow: "CI".into(),
            cost_center_annotation: "acme.example.com/cost-center".into(),
            min_backup_retention_days: 7,
            http_timeout_secs: 5,
            checks: Vec::new(),
        }
    }
}

impl ScorecardsConfig {
    /// What parses but cannot work.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let builtin = super::checks::BUILTIN;
        for (i, c) in self.checks.iter().enumerate() {
            let valid = !c.name.is_empty()
                && c.name.len() <= 60
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                out.push(format!(
                    "scorecards.checks[{i}].name: `{}` must be lowercase letters, digits and dashes",
                    c.name
                ));
            }
            if builtin.contains(&c.name.as_str()) {
                out.push(format!(
                    "scorecards.checks[{i}].name: `{}` is a built-in check",
                    c.name
                ));
            }
            if let Rule::Http { url, .. } = &c.rule {
                if let Err(e) = crate::util::template::check(
                    "scorecards.checks.url",
                    url,
                    &["service", "owner"],
                ) {
                    out.push(e.to_string());
                }
            }
        }
        out
    }
}
