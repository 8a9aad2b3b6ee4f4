//! The checks: the docs' seven, and the platform team's own. Each looks at
//! one catalog component (and, for what only CI knows, the results pushed
//! for it) and says pass, fail with why, or does not apply.

use std::time::Duration;

use super::config::{CatalogField, CustomCheck, Rule, ScorecardsConfig};
use crate::catalog::{Catalog, Component};
use crate::domain::scorecard::{CheckOutcome, Verdict, Weight};
use crate::storage::scorecards::PushedResult;
use crate::util::text::shorten;

/// The built-in checks, as the docs name them.
pub const BUILTIN: [&str; 7] = [
    "has-owner",
    "ci-passing",
    "has-techdocs",
    "has-monitoring",
    "has-backups",
    "has-oncall",
    "has-cost-tags",
];

const TECHDOCS: &str = "backstage.io/techdocs-ref";
const PAGERDUTY: &str = "pagerduty.com/service-id";
/// Resource types whose data must be backed up (Redis, Kafka, RabbitMQ are
/// not: the docs say so).
const DATABASES: [&str; 5] = ["postgres", "postgresql", "mysql", "mongodb", "mongo"];

const DAY_MS: i64 = 86_400_000;

/// What checking needs besides the component.
pub struct Context<'a> {
    pub config: &'a ScorecardsConfig,
    pub catalog: &'a Catalog,
    pub http: &'a reqwest::Client,
    pub pushed: &'a [PushedResult],
    /// Unix ms.
    pub now: i64,
}

impl Context<'_> {
    fn fix_url(&self, check: &str) -> Option<String> {
        crate::util::template::render(
            "scorecards.fix_url",
            &self.config.fix_url,
            &[("check", check)],
        )
        .ok()
        .filter(|u| !u.is_empty())
    }

    fn pushed(&self, check: &str) -> Option<&PushedResult> {
        self.pushed.iter().find(|p| p.check == check)
    }

    /// A pushed result young enough to count.
    fn recent(&self, check: &str) -> Result<&PushedResult, String> {
        let max_days = self.config.ci_max_age_days as i64;
        match self.pushed(check) {
            None => Err(format!("no result reported in the last {max_days} days")),
            Some(p) if self.now - p.at > max_days * DAY_MS => Err(format!(
                "the last result is {} days old (at most {max_days})",
                (self.now - p.at) / DAY_MS
            )),
            Some(p) => Ok(p),
        }
    }
}

fn outcome(
    ctx: &Context<'_>,
    name: &str,
    weight: Weight,
    help: &str,
    verdict: Verdict,
) -> CheckOutcome {
    CheckOutcome {
        name: name.to_owned(),
        weight,
        verdict,
        help: help.to_owned(),
        fix_url: ctx.fix_url(name),
    }
}

fn annotation<'a>(c: &'a Component, key: &str) -> Option<&'a str> {
    c.annotations
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

fn from_pushed(p: &PushedResult) -> Verdict {
    if p.passed {
        Verdict::Pass
    } else {
        Verdict::Fail(
            p.detail
                .as_deref()
                .map(shorten)
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| format!("the last result ({}) failed", p.source)),
        )
    }
}

/// The docs' seven checks for one component.
pub fn builtin(ctx: &Context<'_>, c: &Component) -> Vec<CheckOutcome> {
    let owner = match (&c.owner, &c.owner_user) {
        (Some(team), _) if ctx.catalog.group(team.as_str()).is_some() => Verdict::Pass,
        (Some(team), _) => {
            Verdict::Fail(format!("its owner `{team}` is not a group in the catalog"))
        }
        (None, Some(user)) => Verdict::Fail(format!(
            "it is owned by a person (`user:{user}`); people change teams, teams remain"
        )),
        (None, None) => Verdict::Fail("it has no spec.owner".into()),
    };
    let ci = match ctx.recent("ci-passing") {
        Ok(p) => from_pushed(p),
        Err(why) => Verdict::Fail(format!("no passing CI run on the default branch: {why}")),
    };
    let techdocs = match annotation(c, TECHDOCS) {
        Some(_) => Verdict::Pass,
        None => Verdict::Fail(format!("no `{TECHDOCS}` annotation")),
    };
    let monitoring = match ctx.recent("has-monitoring") {
        Ok(p) => from_pushed(p),
        Err(why) => Verdict::Fail(format!("monitoring not confirmed: {why}")),
    };
    let backups = backups(ctx, c);
    let oncall = match annotation(c, PAGERDUTY) {
        Some(_) => Verdict::Pass,
        None => Verdict::Fail(format!("no `{PAGERDUTY}` annotation")),
    };
    let cost = &ctx.config.cost_center_annotation;
    let cost_tags = match annotation(c, cost) {
        Some(_) => Verdict::Pass,
        None => Verdict::Fail(format!("no `{cost}` annotation")),
    };
    vec![
        outcome(ctx, "has-owner", Weight::Critical, "Set spec.owner to a team group that exists in the catalog.", owner),
        outcome(ctx, "ci-passing", Weight::Critical, "The latest CI run on the default branch must pass and be under 30 days old: fix the failing job and merge.", ci),
        outcome(ctx, "has-techdocs", Weight::High, "Add `backstage.io/techdocs-ref: dir:.` and commit mkdocs.yml with docs/index.md.", techdocs),
        outcome(ctx, "has-monitoring", Weight::High, "Scrape /metrics in production and keep an alert rule with a runbook_url in deploy/alerts.yaml.", monitoring),
        outcome(ctx, "has-backups", Weight::Medium, "Enable backups (retentionDays ≥ 7) on every postgres, mysql or mongodb resource in dependsOn.", backups),
        outcome(ctx, "has-oncall", Weight::Medium, "Add the `pagerduty.com/service-id` annotation with your PagerDuty service's id.", oncall),
        outcome(ctx, "has-cost-tags", Weight::Low, "Add your team's cost-center annotation (see the Cost and tagging page).", cost_tags),
    ]
}

/// `has-backups`: every database the component depends on keeps backups
/// long enough. No database: the check does not apply.
fn backups(ctx: &Context<'_>, c: &Component) -> Verdict {
    let min = ctx.config.min_backup_retention_days;
    let mut databases = 0;
    let mut problems = Vec::new();
    for dep in &c.depends_on {
        let name = dep.strip_prefix("resource:").unwrap_or(dep);
        let name = name.rsplit('/').next().unwrap_or(name);
        let Some(r) = ctx.catalog.resources().iter().find(|r| r.name == name) else {
            continue;
        };
        let is_db = r
            .resource_type
            .as_deref()
            .is_some_and(|t| DATABASES.contains(&t.to_ascii_lowercase().as_str()));
        if !is_db {
            continue;
        }
        databases += 1;
        match r.backup {
            None => problems.push(format!("{name} has no backups configured")),
            Some(b) if !b.enabled => problems.push(format!("{name} has backups disabled")),
            Some(b) => match b.retention_days {
                Some(d) if d >= min => {}
                Some(d) => problems.push(format!("{name} keeps backups {d} days (at least {min})")),
                None => problems.push(format!("{name} sets no backup.retentionDays")),
            },
        }
    }
    if databases == 0 {
        Verdict::NotApplicable
    } else if problems.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(problems.join("; "))
    }
}

/// A configured check for one component.
pub async fn custom(ctx: &Context<'_>, check: &CustomCheck, c: &Component) -> CheckOutcome {
    let out = |verdict| CheckOutcome {
        name: check.name.clone(),
        weight: check.weight.0,
        verdict,
        help: check.help.clone(),
        fix_url: check.fix_url.clone().or_else(|| ctx.fix_url(&check.name)),
    };
    if !check.lifecycles.is_empty()
        && !c
            .lifecycle
            .as_ref()
            .is_some_and(|l| check.lifecycles.iter().any(|x| x == l))
    {
        return out(Verdict::NotApplicable);
    }
    let matches =
        |value: Option<&str>, pattern: &Option<super::config::Pattern>| match (value, pattern) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(v), Some(p)) => p.0.is_match(v),
        };
    let verdict = match &check.rule {
        Rule::Annotation { key, pattern } => {
            let v = annotation(c, key);
            if matches(v, pattern) {
                Verdict::Pass
            } else if v.is_some() {
                Verdict::Fail(format!(
                    "`{key}` does not match {}",
                    pattern.as_ref().map(|p| p.0.as_str()).unwrap_or("")
                ))
            } else {
                Verdict::Fail(format!("no `{key}` annotation"))
            }
        }
        Rule::Field { field, pattern } => {
            let owner = c.owner.as_ref().map(|o| o.to_string());
            let v: Option<&str> = match field {
                CatalogField::Owner => owner.as_deref(),
                CatalogField::Lifecycle => c.lifecycle.as_deref(),
                CatalogField::System => c.system.as_deref(),
                CatalogField::Description => c.description.as_deref(),
                CatalogField::Title => c.title.as_deref(),
                CatalogField::Type => c.kind.as_deref(),
            };
            if matches(v, pattern) {
                Verdict::Pass
            } else {
                Verdict::Fail(
                    format!(
                        "{field:?} is {}",
                        v.map(|v| format!("`{}`", shorten(v)))
                            .unwrap_or_else(|| "not set".into())
                    )
                    .to_lowercase(),
                )
            }
        }
        Rule::Tag { pattern } => {
            if c.tags.iter().any(|t| pattern.0.is_match(t)) {
                Verdict::Pass
            } else {
                Verdict::Fail(format!("no tag matches {}", pattern.0.as_str()))
            }
        }
        Rule::Http {
            url,
            status,
            pointer,
            equals,
        } => {
            http(
                ctx,
                c,
                url,
                status.unwrap_or(200),
                pointer.as_deref(),
                equals.as_deref(),
            )
            .await
        }
        Rule::Pushed => match ctx.recent(&check.name) {
            Ok(p) => from_pushed(p),
            Err(why) => Verdict::Fail(why),
        },
    };
    out(verdict)
}

async fn http(
    ctx: &Context<'_>,
    c: &Component,
    url: &str,
    want: u16,
    pointer: Option<&str>,
    equals: Option<&str>,
) -> Verdict {
    let owner = c.owner.as_ref().map(|o| o.to_string()).unwrap_or_default();
    let url = match crate::util::template::render(
        "scorecards.checks.url",
        url,
        &[("service", c.name.as_str()), ("owner", &owner)],
    ) {
        Ok(u) => u,
        Err(e) => return Verdict::Fail(format!("the check's URL does not fill: {e}")),
    };
    let timeout = Duration::from_secs(ctx.config.http_timeout_secs.clamp(1, 60));
    let resp = match ctx.http.get(&url).timeout(timeout).send().await {
        Ok(r) => r,
        Err(e) => {
            return Verdict::Fail(format!(
                "GET {} failed: {}",
                shorten(&url),
                shorten(&e.to_string())
            ))
        }
    };
    let got = resp.status().as_u16();
    if got != want {
        return Verdict::Fail(format!(
            "GET {} answered {got} (expected {want})",
            shorten(&url)
        ));
    }
    let Some(pointer) = pointer else {
        return Verdict::Pass;
    };
    // A check reads little: a large answer is refused, not buffered.
    const MAX: usize = 256 * 1024;
    let body = match resp.bytes().await {
        Ok(b) if b.len() <= MAX => b,
        Ok(_) => return Verdict::Fail("the answer is too large to check".into()),
        Err(e) => {
            return Verdict::Fail(format!(
                "reading the answer failed: {}",
                shorten(&e.to_string())
            ))
        }
    };
    let doc: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return Verdict::Fail("the answer is not JSON".into()),
    };
    let Some(found) = doc.pointer(pointer).filter(|v| !v.is_null()) else {
        return Verdict::Fail(format!("nothing at {pointer}"));
    };
    let text = match found {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match equals {
        Some(want) if text != want => Verdict::Fail(format!(
            "{pointer} is `{}`, expected `{want}`",
            shorten(&text)
        )),
        _ => Verdict::Pass,
    }
}
