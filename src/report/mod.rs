//! The platform report (issue 18): what Paver's own records say about the
//! platform — self-service adoption and speed, the docs' questions — and
//! the DORA metrics from deploy events, per service and team.
//!
//! [`build`] reads rows through `storage::report` and hands them to
//! [`compute`], which is pure; `render` turns a [`Report`] into Markdown or
//! CSV (JSON is its serde form), `chart` its weeks into a PNG, `digest`
//! posts it weekly and keeps its `/metrics` gauges. Nothing here runs until
//! asked: no state, no work at start.

pub mod chart;
pub mod config;
pub mod digest;
pub mod dora;
pub mod figures;
pub mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

pub use dora::Dora;
pub use figures::{Percentiles, Rate};

use crate::catalog::Catalog;
use crate::domain::{DeployStatus, Environment};
use crate::storage::report::{DeployRow, EventRow, QuestionRow, RequestRow, RollbackRow};
use crate::storage::{Db, StorageError};
use figures::{date, week_of, WEEK_MS};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("chart: {0}")]
    Chart(String),
}

/// What to report on: `[since, until)` in Unix ms, and one team's
/// services only when `team` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub since: i64,
    pub until: i64,
    pub team: Option<String>,
}

/// How many unanswered topics the report lists.
pub const TOP_TOPICS: usize = 5;

/// The whole report. Its JSON (serde) is the stable, typed form:
/// durations in milliseconds, rates as numerator and denominator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// RFC 3339 (UTC).
    pub since: String,
    pub until: String,
    pub team: Option<String>,
    pub self_service: SelfService,
    pub questions: Questions,
    pub dora: DoraReport,
    /// Week by week (weeks start on Monday, UTC), every week of the window.
    pub weeks: Vec<Week>,
    /// What the environments and resources Paver created cost a month now,
    /// by team (from the estimates on their requests); `None` when the
    /// report was built without the price table (the digest, the gauges).
    pub cost: Option<Cost>,
}

/// The monthly run rate of what Paver created and still stands, by owning
/// team: the estimate each done request carried, an environment or
/// resource counted once at its latest price, a destroyed environment or
/// an expired preview no longer (`storage::costs`). Not windowed: it is
/// what stands at the end of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// ISO 4217 code of every amount.
    pub currency: String,
    pub monthly_total_cents: i64,
    pub teams: Vec<TeamCost>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamCost {
    pub team: String,
    pub monthly_cents: i64,
    /// As a person reads it ("$1,234").
    pub monthly: String,
}

/// Adds the cost section to `report`: each team's monthly total, priced
/// and formatted by `prices` (only the scope's team when it names one).
pub async fn with_cost(
    mut report: Report,
    db: &Db,
    catalog: &Catalog,
    prices: &crate::domain::PriceTable,
) -> Result<Report, ReportError> {
    let owner = |service: &str| catalog.component(service).and_then(|c| c.owner.clone());
    let by_team = db.requests().cost_by_team(&owner).await?;
    let teams: Vec<TeamCost> = by_team
        .into_iter()
        .filter(|(team, _)| report.team.as_deref().is_none_or(|t| t == team.as_str()))
        .map(|(team, cents)| TeamCost {
            team: team.to_string(),
            monthly_cents: cents.get(),
            monthly: prices.format(cents),
        })
        .collect();
    report.cost = Some(Cost {
        currency: prices.currency.to_string(),
        monthly_total_cents: teams.iter().map(|t| t.monthly_cents).sum(),
        teams,
    });
    Ok(report)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelfService {
    /// Requests created in the window.
    pub requests: u64,
    /// Requests per week, action and owning team (`None`: no owner known).
    pub by_week: Vec<WeekCount>,
    /// Creation to success with a URL (confirmation and approval included).
    pub time_to_url: Percentiles,
    /// Approvers asked to approved, denied, cancelled or expired.
    pub approval_wait: Percentiles,
    /// Requests amended in their thread after being proposed.
    pub clarified: Rate,
    /// Requests whose understanding called the LLM.
    pub llm_assisted: Rate,
    pub llm_calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeekCount {
    /// The week's Monday, `2026-11-23`.
    pub week: String,
    pub action: String,
    pub team: Option<String>,
    pub requests: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Questions {
    pub asked: u64,
    /// Answered from the docs, or by a human through a handoff.
    pub answered: Rate,
    /// "Ask a human" pressed.
    pub escalated: Rate,
    /// Questions with more helpful than not-helpful votes, of those voted on.
    pub helpful: Rate,
    /// Unanswered questions grouped by their words, most asked first.
    pub top_unanswered: Vec<Topic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topic {
    pub topic: String,
    pub asked: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoraReport {
    /// Production deployments of every service in scope.
    pub overall: Dora,
    pub teams: Vec<TeamDora>,
    pub services: Vec<ServiceDora>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamDora {
    /// `None`: services with no owner in the catalog.
    pub team: Option<String>,
    pub dora: Dora,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceDora {
    pub service: String,
    pub team: Option<String>,
    pub dora: Dora,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Week {
    pub week: String,
    /// Unix ms of the week's start.
    pub start_ms: i64,
    pub requests: u64,
    pub deployments: u64,
    pub failed_deployments: u64,
    pub questions: u64,
}

/// Everything the report is computed from.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub requests: Vec<RequestRow>,
    pub events: Vec<EventRow>,
    /// Production deploy events, oldest first.
    pub deploys: Vec<DeployRow>,
    /// Paver rollbacks in production that succeeded.
    pub rollbacks: Vec<RollbackRow>,
    pub questions: Vec<QuestionRow>,
}

/// Reads the window's rows and computes the report.
pub async fn build(db: &Db, catalog: &Catalog, scope: &Scope) -> Result<Report, ReportError> {
    let store = db.report();
    let prod = Environment::Production.as_str();
    let rows = Rows {
        requests: store.requests(scope.since, scope.until).await?,
        events: store.request_events(scope.since, scope.until).await?,
        deploys: store.deploy_events(prod, scope.since, scope.until).await?,
        rollbacks: store.rollbacks(prod, scope.since, scope.until).await?,
        questions: store.questions(scope.since, scope.until).await?,
    };
    let owner = |service: &str| {
        catalog
            .component(service)
            .and_then(|c| c.owner.as_ref())
            .map(|t| t.to_string())
    };
    Ok(compute(&rows, owner, scope))
}

/// The report of `rows`; `owner` names a service's team.
pub fn compute(rows: &Rows, owner: impl Fn(&str) -> Option<String>, scope: &Scope) -> Report {
    let in_team = |service: Option<&str>| match &scope.team {
        None => true,
        Some(t) => service.and_then(&owner).as_deref() == Some(t.as_str()),
    };
    let requests: Vec<&RequestRow> = rows
        .requests
        .iter()
        .filter(|r| in_team(r.service.as_deref()))
        .collect();
    let self_service = self_service(&requests, &rows.events, &owner);
    let questions = questions(&rows.questions);

    // DORA: each service's deployments, then per team and overall.
    let mut by_service: BTreeMap<&str, Vec<dora::Event>> = BTreeMap::new();
    for e in &rows.deploys {
        if !in_team(Some(&e.service)) {
            continue;
        }
        let Some(status) = DeployStatus::parse(&e.status) else {
            continue;
        };
        by_service.entry(&e.service).or_default().push(dora::Event {
            at: e.at,
            status,
            version: e.version.clone(),
            commit: e.commit.clone(),
            commit_at: e.commit_at,
        });
    }
    let mut rollbacks: HashMap<&str, Vec<dora::Rollback>> = HashMap::new();
    for r in &rows.rollbacks {
        if in_team(Some(&r.service)) {
            by_service.entry(&r.service).or_default();
            rollbacks
                .entry(&r.service)
                .or_default()
                .push(dora::Rollback {
                    created_at: r.created_at,
                    succeeded_at: r.succeeded_at,
                });
        }
    }
    let window = scope.until - scope.since;
    let mut all: Vec<dora::Deployment> = Vec::new();
    let mut teams: BTreeMap<Option<String>, Vec<dora::Deployment>> = BTreeMap::new();
    let mut services = Vec::new();
    for (service, events) in &by_service {
        let ds = dora::deployments(
            events,
            rollbacks.get(service).map(Vec::as_slice).unwrap_or(&[]),
        );
        let team = owner(service);
        services.push(ServiceDora {
            service: (*service).to_owned(),
            team: team.clone(),
            dora: Dora::of(&ds, window),
        });
        teams.entry(team).or_default().extend(ds.iter().cloned());
        all.extend(ds);
    }
    let dora = DoraReport {
        overall: Dora::of(&all, window),
        teams: teams
            .iter()
            .map(|(team, ds)| TeamDora {
                team: team.clone(),
                dora: Dora::of(ds, window),
            })
            .collect(),
        services,
    };

    // Week by week.
    let mut weeks: BTreeMap<i64, Week> = BTreeMap::new();
    if scope.until > scope.since {
        let mut w = week_of(scope.since);
        while w < scope.until {
            weeks.insert(
                w,
                Week {
                    week: date(w),
                    start_ms: w,
                    requests: 0,
                    deployments: 0,
                    failed_deployments: 0,
                    questions: 0,
                },
            );
            w += WEEK_MS;
        }
    }
    for r in &requests {
        if let Some(w) = weeks.get_mut(&week_of(r.created_at)) {
            w.requests += 1;
        }
    }
    for d in all.iter().filter(|d| d.counts()) {
        let at = match (d.deployed_at, d.failed_at) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(d.started_at),
        };
        if let Some(w) = weeks.get_mut(&week_of(at)) {
            w.deployments += 1;
            w.failed_deployments += u64::from(d.failed());
        }
    }
    for q in &rows.questions {
        if let Some(w) = weeks.get_mut(&week_of(q.created_at)) {
            w.questions += 1;
        }
    }

    Report {
        since: rfc3339(scope.since),
        until: rfc3339(scope.until),
        team: scope.team.clone(),
        self_service,
        questions,
        dora,
        weeks: weeks.into_values().collect(),
        cost: None,
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

fn self_service(
    requests: &[&RequestRow],
    events: &[EventRow],
    owner: &impl Fn(&str) -> Option<String>,
) -> SelfService {
    let ids: BTreeSet<&str> = requests.iter().map(|r| r.id.as_str()).collect();
    let mut log: HashMap<&str, Vec<&EventRow>> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| ids.contains(e.request_id.as_str()))
    {
        log.entry(&e.request_id).or_default().push(e);
    }
    let mut by_week: BTreeMap<(i64, &str, Option<String>), u64> = BTreeMap::new();
    let mut to_url = Vec::new();
    let mut waits = Vec::new();
    let mut clarified = 0;
    let mut llm = 0;
    let (mut calls, mut prompt, mut completion) = (0u64, 0u64, 0u64);
    for r in requests {
        let team = r.service.as_deref().and_then(owner);
        *by_week
            .entry((week_of(r.created_at), &r.action_kind, team))
            .or_default() += 1;
        let entries = log.get(r.id.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        if r.result_url.is_some() {
            if let Some(done) = entries.iter().find(|e| e.to_state == "succeeded") {
                to_url.push(done.at - r.created_at);
            }
        }
        // Each round of approval: asked, then the entry that left the state.
        let mut asked: Option<i64> = None;
        for e in entries {
            if let Some(at) = asked {
                if e.from_state.as_deref() == Some("awaiting_approval") {
                    waits.push(e.at - at);
                    asked = None;
                }
            }
            if e.to_state == "awaiting_approval" {
                asked = Some(e.at);
            }
        }
        clarified += u64::from(entries.iter().any(|e| e.transition == "amend"));
        llm += u64::from(r.llm_calls > 0);
        calls += r.llm_calls.max(0) as u64;
        prompt += r.prompt_tokens.max(0) as u64;
        completion += r.completion_tokens.max(0) as u64;
    }
    let n = requests.len() as u64;
    SelfService {
        requests: n,
        by_week: by_week
            .into_iter()
            .map(|((w, action, team), requests)| WeekCount {
                week: date(w),
                action: action.to_owned(),
                team,
                requests,
            })
            .collect(),
        time_to_url: Percentiles::of(to_url),
        approval_wait: Percentiles::of(waits),
        clarified: Rate::new(clarified, n),
        llm_assisted: Rate::new(llm, n),
        llm_calls: calls,
        prompt_tokens: prompt,
        completion_tokens: completion,
    }
}

fn questions(rows: &[QuestionRow]) -> Questions {
    let asked = rows.len() as u64;
    let answered = rows.iter().filter(|q| q.known || q.human_answered).count() as u64;
    let escalated = rows.iter().filter(|q| q.escalated).count() as u64;
    let voted: Vec<&QuestionRow> = rows
        .iter()
        .filter(|q| q.helpful + q.not_helpful > 0)
        .collect();
    let helpful = voted.iter().filter(|q| q.helpful > q.not_helpful).count() as u64;
    let mut topics: BTreeMap<String, u64> = BTreeMap::new();
    for q in rows.iter().filter(|q| !q.known && !q.human_answered) {
        let key = crate::domain::topic::gap_key(&q.question);
        let key = if key.is_empty() {
            q.question.to_lowercase()
        } else {
            key
        };
        *topics.entry(key).or_default() += 1;
    }
    let mut top: Vec<Topic> = topics
        .into_iter()
        .map(|(topic, asked)| Topic { topic, asked })
        .collect();
    // Most asked first; equal counts alphabetically (BTreeMap order kept).
    top.sort_by_key(|t| std::cmp::Reverse(t.asked));
    top.truncate(TOP_TOPICS);
    Questions {
        asked,
        answered: Rate::new(answered, asked),
        escalated: Rate::new(escalated, asked),
        helpful: Rate::new(helpful, voted.len() as u64),
        top_unanswered: top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, service: &str, created_at: i64, url: bool) -> RequestRow {
        RequestRow {
            id: id.into(),
            action_kind: "deploy".into(),
            service: Some(service.into()),
            state: "succeeded".into(),
            created_at,
            result_url: url.then(|| "https://x.example".into()),
            llm_calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
        }
    }

    fn event(id: &str, at: i64, transition: &str, from: &str, to: &str) -> EventRow {
        EventRow {
            request_id: id.into(),
            at,
            transition: transition.into(),
            from_state: Some(from.into()),
            to_state: to.into(),
        }
    }

    #[test]
    fn every_approval_round_is_a_wait_and_only_a_url_counts_to_url() {
        let rows = Rows {
            requests: vec![
                request("r1", "svc-a", 0, true),
                request("r2", "svc-b", 0, false),
            ],
            events: vec![
                event("r1", 10, "need_approval", "confirmed", "awaiting_approval"),
                event("r1", 70, "deny", "awaiting_approval", "denied"),
                event("r1", 100, "retry", "failed", "confirmed"),
                event("r1", 110, "need_approval", "confirmed", "awaiting_approval"),
                event("r1", 140, "approve", "awaiting_approval", "approved"),
                event("r1", 200, "succeed", "executing", "succeeded"),
                // Succeeded without a URL: no request-to-URL time.
                event("r2", 50, "succeed", "executing", "succeeded"),
                // Still waiting: not a wait yet.
                event("r2", 60, "need_approval", "confirmed", "awaiting_approval"),
            ],
            ..Rows::default()
        };
        let scope = Scope {
            since: 0,
            until: WEEK_MS,
            team: None,
        };
        let owner = |s: &str| (s == "svc-a").then(|| "team-a".to_owned());
        let r = compute(&rows, owner, &scope);
        assert_eq!(r.self_service.approval_wait, Percentiles::of(vec![60, 30]));
        assert_eq!(r.self_service.time_to_url, Percentiles::of(vec![200]));
        // One team: its requests only.
        let a = compute(
            &rows,
            owner,
            &Scope {
                team: Some("team-a".into()),
                ..scope
            },
        );
        assert_eq!(a.self_service.requests, 1);
        assert_eq!(a.self_service.by_week[0].team.as_deref(), Some("team-a"));
        // 1970-01-01 was a Thursday: the window touches two weeks.
        assert_eq!(a.weeks.len(), 2);
        assert_eq!(a.weeks[0].week, "1969-12-29");
    }
}
