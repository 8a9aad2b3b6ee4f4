//! The platform report on a seeded history, on SQLite (and on PostgreSQL
//! when PAVER_TEST_DATABASE_URL is set): a deterministic generator writes a
//! few hundred requests (with their audit log), production deploy events
//! (with staging noise), Paver rollbacks and docs questions over six weeks,
//! keeping the ground truth of what it wrote; every figure of the report is
//! checked against answers the test works out from that truth, not by
//! calling the code under test. The chart is a PNG of the configured size,
//! and `paver report` prints the same report as JSON, CSV and Markdown.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use std::sync::{Arc, OnceLock};

use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};

use paver::catalog::{Catalog, SharedCatalog};
use paver::config::Config;
use paver::domain::ChannelRef;
use paver::engine::EngineSettings;
use paver::report::config::ReportConfig;
use paver::report::digest::DigestOutcome;
use paver::report::{self, Percentiles, Rate, Scope};
use paver::storage::Db;
use paver::util::cron::Cron;
use support::fake;
use support::paver::TestPaver;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;
/// Monday 2026-09-07 00:00 UTC.
const T0: i64 = 1_788_739_200_000;
const WEEKS: i64 = 6;

const CATALOG: &str = r#"
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-x}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-y}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: svc-a}
spec: {type: service, lifecycle: production, owner: team-x}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: svc-b}
spec: {type: service, lifecycle: production, owner: team-x}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: svc-c}
spec: {type: service, lifecycle: production, owner: team-y}
"#;

/// svc-z is in no catalog: its team is unknown.
const SERVICES: [(&str, Option<&str>); 4] = [
    ("svc-a", Some("team-x")),
    ("svc-b", Some("team-x")),
    ("svc-c", Some("team-y")),
    ("svc-z", None),
];

fn team_of(service: &str) -> Option<String> {
    SERVICES
        .iter()
        .find(|(s, _)| *s == service)
        .and_then(|(_, t)| t.map(str::to_owned))
}

fn week_of(ms: i64) -> i64 {
    T0 + (ms - T0).div_euclid(WEEK) * WEEK
}

/// Nearest rank, as the README defines it.
fn pct(mut v: Vec<i64>) -> Percentiles {
    v.sort();
    let at = |p: usize| {
        if v.is_empty() {
            None
        } else {
            let rank = (p * v.len()).div_ceil(100).max(1);
            Some(v[rank - 1])
        }
    };
    Percentiles {
        n: v.len() as u64,
        p50_ms: at(50),
        p90_ms: at(90),
    }
}

#[derive(Default)]
struct DoraTruth {
    deployments: u64,
    failed: u64,
    succeeded: u64,
    leads: Vec<i64>,
    restores: Vec<i64>,
    unrestored: u64,
}

impl DoraTruth {
    fn absorb(&mut self, o: &DoraTruth) {
        self.deployments += o.deployments;
        self.failed += o.failed;
        self.succeeded += o.succeeded;
        self.leads.extend(&o.leads);
        self.restores.extend(&o.restores);
        self.unrestored += o.unrestored;
    }
}

#[derive(Default)]
struct Truth {
    requests: u64,
    by_week: BTreeMap<(i64, String, Option<String>), u64>,
    to_url: Vec<i64>,
    waits: Vec<i64>,
    clarified: u64,
    llm: u64,
    calls: u64,
    prompt: u64,
    completion: u64,
    asked: u64,
    answered: u64,
    escalated: u64,
    voted: u64,
    helpful: u64,
    unanswered: BTreeMap<String, u64>,
    dora: BTreeMap<String, DoraTruth>,
    weeks: BTreeMap<i64, [u64; 4]>,
}

struct Gen<'a> {
    db: &'a Db,
    rng: StdRng,
    t: Truth,
    n: u64,
}

impl Gen<'_> {
    async fn exec(&self, sql: &str, s: &[&str], i: &[Option<i64>]) {
        let mut q = sqlx::query(sql);
        for v in s {
            q = q.bind(v.to_string());
        }
        for v in i {
            q = q.bind(*v);
        }
        q.execute(self.db.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn event(&self, id: &str, transition: &str, from: &str, to: &str, at: i64) {
        self.exec(
            "INSERT INTO request_events (request_id, transition, from_state, to_state, at, actor, chat) \
             VALUES ($1, $2, $3, $4, $5, 'ada', 'slack:U1')",
            &[id, transition, from, to],
            &[Some(at)],
        )
        .await;
    }

    /// One request and its audit log; returns its id.
    #[allow(clippy::too_many_arguments)]
    async fn request(
        &mut self,
        action: &str,
        service: &str,
        environment: &str,
        created: i64,
        fate: Fate,
        url: bool,
        amended: bool,
        llm_calls: i64,
    ) -> String {
        self.n += 1;
        let id = format!("r-{:04}", self.n);
        let (prompt, completion) = if llm_calls > 0 {
            (
                llm_calls * self.rng.gen_range(300..900),
                llm_calls * self.rng.gen_range(20..90),
            )
        } else {
            (0, 0)
        };
        let state = match fate {
            Fate::Succeeded { .. } => "succeeded",
            Fate::Denied { .. } => "denied",
            Fate::Waiting { .. } => "awaiting_approval",
            Fate::Failed => "failed",
        };
        let url_value = (url && matches!(fate, Fate::Succeeded { .. }))
            .then(|| format!("https://{service}.example/{id}"));
        let mut q = sqlx::query(
            "INSERT INTO requests (id, nonce, state, action_kind, action_json, action_hash, service, environment, \
             requester, requester_chat_id, platform, channel, result_url, created_at, updated_at, \
             nlu_path, nlu_llm_calls, nlu_prompt_tokens, nlu_completion_tokens) \
             VALUES ($1, 'n', $2, $3, '{}', 'h', $4, $5, 'ada', 'U1', 'slack', 'C1', $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(id.clone())
        .bind(state)
        .bind(action.to_owned())
        .bind(service.to_owned())
        .bind(environment.to_owned())
        .bind(url_value.clone())
        .bind(created)
        .bind(created)
        .bind(if llm_calls > 0 { "llm" } else { "rules" })
        .bind(llm_calls)
        .bind((llm_calls > 0).then_some(prompt));
        q = q.bind((llm_calls > 0).then_some(completion));
        q.execute(self.db.pool()).await.unwrap();

        let mut at = created;
        if amended {
            at += self.rng.gen_range(1..5) * MIN;
            self.event(&id, "amend", "proposed", "proposed", at).await;
            self.t.clarified += 1;
        }
        at += self.rng.gen_range(1..10) * MIN;
        self.event(&id, "confirm", "proposed", "confirmed", at)
            .await;
        let wait = |f: &Fate| match f {
            Fate::Succeeded { approval } => *approval,
            Fate::Denied { wait } => Some(*wait),
            Fate::Waiting { .. } => None,
            Fate::Failed => None,
        };
        let asks = !matches!(fate, Fate::Failed | Fate::Succeeded { approval: None });
        if asks {
            self.event(&id, "need_approval", "confirmed", "awaiting_approval", at)
                .await;
        }
        match fate {
            Fate::Denied { wait } => {
                self.event(&id, "deny", "awaiting_approval", "denied", at + wait)
                    .await;
            }
            Fate::Waiting { .. } => {}
            Fate::Failed => {
                self.event(&id, "auto_approve", "confirmed", "approved", at)
                    .await;
                self.event(&id, "start", "approved", "executing", at + MIN)
                    .await;
                self.event(&id, "fail", "executing", "failed", at + 3 * MIN)
                    .await;
            }
            Fate::Succeeded { approval } => {
                match approval {
                    Some(w) => {
                        at += w;
                        self.event(&id, "approve", "awaiting_approval", "approved", at)
                            .await;
                    }
                    None => {
                        self.event(&id, "auto_approve", "confirmed", "approved", at)
                            .await
                    }
                }
                self.event(&id, "start", "approved", "executing", at + MIN)
                    .await;
                at += self.rng.gen_range(2..40) * MIN;
                self.event(&id, "succeed", "executing", "succeeded", at)
                    .await;
                if url_value.is_some() {
                    self.t.to_url.push(at - created);
                }
            }
        }
        if let Some(w) = wait(&fate) {
            self.t.waits.push(w);
        }
        self.t.requests += 1;
        *self
            .t
            .by_week
            .entry((week_of(created), action.to_owned(), team_of(service)))
            .or_default() += 1;
        self.t.weeks.entry(week_of(created)).or_default()[0] += 1;
        self.t.llm += u64::from(llm_calls > 0);
        self.t.calls += llm_calls as u64;
        self.t.prompt += prompt as u64;
        self.t.completion += completion as u64;
        id
    }

    async fn deploy_event(
        &self,
        service: &str,
        environment: &str,
        status: &str,
        version: &str,
        commit_at: Option<i64>,
        at: i64,
    ) {
        self.exec(
            "INSERT INTO deploy_events (source, delivery, service, environment, version, status, commit_sha, at, commit_at) \
             VALUES ('generic', $1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &format!("d-{service}-{at}-{status}"),
                service,
                environment,
                version,
                status,
                "abc123",
            ],
            &[Some(at), commit_at],
        )
        .await;
    }

    fn deployed(&mut self, service: &str, reached: i64, failed: bool) {
        let d = self.t.dora.entry(service.to_owned()).or_default();
        d.deployments += 1;
        if failed {
            d.failed += 1;
        } else {
            d.succeeded += 1;
        }
        let w = self.t.weeks.entry(week_of(reached)).or_default();
        w[1] += 1;
        w[2] += u64::from(failed);
    }
}

#[derive(Clone, Copy)]
enum Fate {
    /// With the approval wait when approvers were asked.
    Succeeded {
        approval: Option<i64>,
    },
    Denied {
        wait: i64,
    },
    Waiting {
        _since: i64,
    },
    Failed,
}

async fn seed(db: &Db) -> Truth {
    let mut g = Gen {
        db,
        rng: StdRng::seed_from_u64(18),
        t: Truth::default(),
        n: 0,
    };
    for w in 0..WEEKS {
        g.t.weeks.insert(T0 + w * WEEK, [0; 4]);
    }

    // Self-service requests.
    let actions = ["create_environment", "deploy", "scale", "add_resource"];
    for _ in 0..300 {
        let created = T0 + g.rng.gen_range(0..(WEEKS * WEEK - DAY));
        let action = actions[g.rng.gen_range(0..actions.len())];
        let service = SERVICES[g.rng.gen_range(0..SERVICES.len())].0;
        let fate = match g.rng.gen_range(0..10) {
            0 => Fate::Failed,
            1 => Fate::Denied {
                wait: g.rng.gen_range(5..600) * MIN,
            },
            2 => Fate::Waiting { _since: created },
            3..=5 => Fate::Succeeded {
                approval: Some(g.rng.gen_range(1..2000) * MIN),
            },
            _ => Fate::Succeeded { approval: None },
        };
        let url = action == "create_environment" || g.rng.gen_bool(0.3);
        let amended = g.rng.gen_bool(0.15);
        let llm = if g.rng.gen_bool(0.25) {
            g.rng.gen_range(1..3)
        } else {
            0
        };
        g.request(action, service, "staging", created, fate, url, amended, llm)
            .await;
    }

    // Production deploys: each service deploys every 6–30 hours. Most
    // deployments turn healthy; some degrade or fail (the next deployment
    // restores them); svc-b is rolled back through Paver now and then;
    // svc-c's last deployment fails and stays failed.
    for (si, (service, _)) in SERVICES.iter().enumerate() {
        let mut t = T0 + HOUR * (si as i64 + 1);
        let mut k = 0;
        // The open failure waiting for the next deployment's `deployed`.
        let mut pending_failures: Vec<i64> = Vec::new();
        let with_commit = *service == "svc-a" || *service == "svc-c";
        let end = T0 + WEEKS * WEEK - 2 * DAY;
        while t < end {
            k += 1;
            let version = format!("1.{k}.0");
            let run = g.rng.gen_range(2..20) * MIN;
            let commit_at =
                (with_commit && g.rng.gen_bool(0.8)).then(|| t - g.rng.gen_range(10..3000) * MIN);
            let last = t + g.rng.gen_range(6..30) * HOUR >= end;
            let fate = if last && *service == "svc-c" {
                2
            } else {
                match g.rng.gen_range(0..20) {
                    0..=1 => 1,                        // degraded
                    2..=3 => 2,                        // failed
                    4..=5 if *service == "svc-b" => 3, // rolled back
                    _ => 0,
                }
            };
            g.deploy_event(service, "production", "in_progress", &version, commit_at, t)
                .await;
            // Staging noise the report must ignore.
            g.deploy_event(service, "staging", "failed", &version, None, t + MIN)
                .await;
            let done = t + run;
            if fate == 2 {
                g.deploy_event(service, "production", "failed", &version, commit_at, done)
                    .await;
            } else {
                g.deploy_event(service, "production", "deployed", &version, commit_at, done)
                    .await;
            }
            // A deployment that reached `deployed` restores every failure
            // before it; a failed one restores nothing.
            if fate != 2 {
                let d = g.t.dora.entry(service.to_string()).or_default();
                for failed_at in pending_failures.drain(..) {
                    d.restores.push(done - failed_at);
                }
            }
            match fate {
                0 => {
                    g.deploy_event(service, "production", "healthy", &version, None, done + MIN)
                        .await;
                    g.deployed(service, done, false);
                    if let Some(c) = commit_at {
                        g.t.dora.get_mut(*service).unwrap().leads.push(done - c);
                    }
                }
                1 => {
                    let bad = done + 2 * MIN;
                    g.deploy_event(service, "production", "degraded", &version, None, bad)
                        .await;
                    g.deployed(service, done, true);
                    pending_failures.push(bad);
                }
                2 => {
                    g.deployed(service, done, true);
                    pending_failures.push(done);
                }
                _ => {
                    g.deploy_event(service, "production", "healthy", &version, None, done + MIN)
                        .await;
                    g.deployed(service, done, true);
                    // Rolled back through Paver an hour later: the rollback's
                    // own deploy (the previous version) restores.
                    let asked = done + HOUR;
                    let id = g
                        .request(
                            "rollback",
                            service,
                            "production",
                            asked,
                            Fate::Succeeded { approval: None },
                            false,
                            false,
                            0,
                        )
                        .await;
                    let succeeded: i64 = {
                        use sqlx::Row;
                        sqlx::query(
                            "SELECT at FROM request_events WHERE request_id = $1 AND to_state = 'succeeded'",
                        )
                        .bind(id)
                        .fetch_one(db.pool())
                        .await
                        .unwrap()
                        .try_get("at")
                        .unwrap()
                    };
                    let back = format!("1.{}.0", k - 1);
                    let rdone = succeeded - MIN;
                    g.deploy_event(
                        service,
                        "production",
                        "in_progress",
                        &back,
                        None,
                        asked + MIN,
                    )
                    .await;
                    g.deploy_event(service, "production", "deployed", &back, None, rdone)
                        .await;
                    g.deploy_event(service, "production", "healthy", &back, None, rdone + MIN)
                        .await;
                    g.deployed(service, rdone, false);
                    g.t.dora
                        .get_mut(*service)
                        .unwrap()
                        .restores
                        .push(rdone - asked);
                    t = rdone;
                }
            }
            t = t.max(done) + g.rng.gen_range(6..30) * HOUR;
        }
        g.t.dora.entry(service.to_string()).or_default().unrestored +=
            pending_failures.len() as u64;
    }

    // Docs questions.
    let topics = [
        ("how do I rotate the db password", "db password rotate"),
        ("where are the grafana dashboards", "dashboard grafana"),
        ("can I get a bigger kafka quota", "bigger kafka quota"),
    ];
    for i in 0..90 {
        let created = T0 + g.rng.gen_range(0..(WEEKS * WEEK - DAY));
        let known = g.rng.gen_bool(0.55);
        let (text, key) = if known {
            ("how do I deploy to staging", "")
        } else {
            // Unequal weights, so the order of topics is clear.
            let pick = match g.rng.gen_range(0..6) {
                0..=2 => 0,
                3..=4 => 1,
                _ => 2,
            };
            topics[pick]
        };
        let escalated = g.rng.gen_bool(0.2);
        let human = escalated && g.rng.gen_bool(0.5);
        let id = format!("q-{i:03}");
        sqlx::query(
            "INSERT INTO questions (id, nonce, platform, channel, asker_id, asker_name, question, sources_json, answer_json, \
             handoff_state, known, answered_at, created_at) \
             VALUES ($1, 'n', 'slack', 'C1', 'U1', 'ada', $2, '[]', '{}', $3, $4, $5, $6)",
        )
        .bind(id.clone())
        .bind(text.to_owned())
        .bind(escalated.then(|| if human { "answered" } else { "asked" }.to_owned()))
        .bind(i64::from(known))
        .bind(human.then_some(created + HOUR))
        .bind(created)
        .execute(db.pool())
        .await
        .unwrap();
        let (mut up, mut down) = (0, 0);
        for voter in 0..g.rng.gen_range(0..3) {
            let helpful = g.rng.gen_bool(0.6);
            if helpful {
                up += 1
            } else {
                down += 1
            }
            g.exec(
                "INSERT INTO question_votes (question_id, voter, helpful, at) VALUES ($1, $2, $3, $4)",
                &[&id, &format!("U{voter}")],
                &[Some(i64::from(helpful)), Some(created + MIN)],
            )
            .await;
        }
        g.t.asked += 1;
        g.t.answered += u64::from(known || human);
        g.t.escalated += u64::from(escalated);
        if up + down > 0 {
            g.t.voted += 1;
            g.t.helpful += u64::from(up > down);
        }
        if !known && !human {
            *g.t.unanswered.entry(key.to_owned()).or_default() += 1;
        }
        g.t.weeks.entry(week_of(created)).or_default()[3] += 1;
    }
    g.t
}

fn catalog() -> Catalog {
    Catalog::from_yaml_str(CATALOG, "test")
}

fn scope(team: Option<&str>) -> Scope {
    Scope {
        since: T0,
        until: T0 + WEEKS * WEEK,
        team: team.map(str::to_owned),
    }
}

fn dora_matches(what: &str, got: &report::Dora, want: &DoraTruth) {
    assert_eq!(got.deployments, want.deployments, "{what}: deployments");
    let weeks = WEEKS as f64;
    assert!(
        (got.per_week - (want.deployments as f64 / weeks * 100.0).round() / 100.0).abs() < 1e-9,
        "{what}: per week {}",
        got.per_week
    );
    assert_eq!(
        got.change_failure,
        Rate::new(want.failed, want.deployments),
        "{what}: change failure"
    );
    assert_eq!(got.lead_time, pct(want.leads.clone()), "{what}: lead time");
    assert_eq!(
        got.lead_time_coverage,
        Rate::new(want.leads.len() as u64, want.succeeded),
        "{what}: lead time coverage"
    );
    assert_eq!(
        got.time_to_restore,
        pct(want.restores.clone()),
        "{what}: time to restore"
    );
    assert_eq!(got.unrestored, want.unrestored, "{what}: unrestored");
}

#[tokio::test]
async fn every_figure_matches_the_seeded_history() {
    let t = support::test_db().await;
    let truth = seed(&t.db).await;
    assert!(truth.requests >= 300, "a few hundred requests");
    let deploys: u64 = truth.dora.values().map(|d| d.deployments).sum();
    assert!(deploys >= 100, "{deploys} deployments");

    let r = report::build(&t.db, &catalog(), &scope(None))
        .await
        .unwrap();
    let s = &r.self_service;
    assert_eq!(s.requests, truth.requests);
    let by_week: BTreeMap<(i64, String, Option<String>), u64> = s
        .by_week
        .iter()
        .map(|w| {
            let start = chrono::NaiveDate::parse_from_str(&w.week, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis();
            ((start, w.action.clone(), w.team.clone()), w.requests)
        })
        .collect();
    assert_eq!(by_week, truth.by_week);
    assert_eq!(s.time_to_url, pct(truth.to_url.clone()));
    assert_eq!(s.approval_wait, pct(truth.waits.clone()));
    assert!(s.time_to_url.n > 50 && s.approval_wait.n > 50);
    assert_eq!(s.clarified, Rate::new(truth.clarified, truth.requests));
    assert_eq!(s.llm_assisted, Rate::new(truth.llm, truth.requests));
    assert_eq!(
        (s.llm_calls, s.prompt_tokens, s.completion_tokens),
        (truth.calls, truth.prompt, truth.completion)
    );

    let q = &r.questions;
    assert_eq!(q.asked, truth.asked);
    assert_eq!(q.answered, Rate::new(truth.answered, truth.asked));
    assert_eq!(q.escalated, Rate::new(truth.escalated, truth.asked));
    assert_eq!(q.helpful, Rate::new(truth.helpful, truth.voted));
    let mut topics: Vec<(String, u64)> = truth.unanswered.clone().into_iter().collect();
    topics.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let got: Vec<(String, u64)> = q
        .top_unanswered
        .iter()
        .map(|t| (t.topic.clone(), t.asked))
        .collect();
    assert_eq!(got, topics);

    let mut overall = DoraTruth::default();
    let mut teams: BTreeMap<Option<String>, DoraTruth> = BTreeMap::new();
    for (service, d) in &truth.dora {
        overall.absorb(d);
        teams.entry(team_of(service)).or_default().absorb(d);
        let got = r
            .dora
            .services
            .iter()
            .find(|x| &x.service == service)
            .unwrap_or_else(|| panic!("{service} is reported"));
        assert_eq!(got.team, team_of(service));
        dora_matches(service, &got.dora, d);
    }
    assert_eq!(r.dora.services.len(), truth.dora.len());
    dora_matches("overall", &r.dora.overall, &overall);
    assert_eq!(r.dora.teams.len(), teams.len());
    for t in &r.dora.teams {
        dora_matches(&format!("{:?}", t.team), &t.dora, &teams[&t.team]);
    }
    // Each kind of failure occurred, so every branch was checked.
    assert!(overall.failed > 5 && overall.unrestored >= 1 && !overall.leads.is_empty());

    let weeks: BTreeMap<i64, [u64; 4]> = r
        .weeks
        .iter()
        .map(|w| {
            (
                w.start_ms,
                [w.requests, w.deployments, w.failed_deployments, w.questions],
            )
        })
        .collect();
    assert_eq!(weeks, truth.weeks);
    assert_eq!(r.cost, None);
    insta::assert_snapshot!("seeded_report_md", report::render::markdown(&r));

    // One team: its services' requests and deploys only.
    let x = report::build(&t.db, &catalog(), &scope(Some("team-x")))
        .await
        .unwrap();
    let want: u64 = truth
        .by_week
        .iter()
        .filter(|(k, _)| k.2.as_deref() == Some("team-x"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(x.self_service.requests, want);
    dora_matches(
        "team-x",
        &x.dora.overall,
        &teams[&Some("team-x".to_owned())],
    );
    assert_eq!(x.dora.services.len(), 2);

    // The chart of those weeks is a PNG of the configured size.
    let png = report::chart::png(&r.weeks).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let info = png::Decoder::new(std::io::Cursor::new(&png))
        .read_info()
        .unwrap();
    assert_eq!(
        (info.info().width, info.info().height),
        (report::chart::WIDTH, report::chart::HEIGHT)
    );
}

#[tokio::test]
async fn an_empty_history_says_na_not_zero() {
    let t = support::test_db().await;
    let r = report::build(&t.db, &catalog(), &scope(None))
        .await
        .unwrap();
    assert_eq!(r.self_service.requests, 0);
    assert_eq!(r.self_service.time_to_url.p50_ms, None);
    assert_eq!(r.dora.overall.change_failure.ratio(), None);
    let md = report::render::markdown(&r);
    assert!(md.contains("| request to URL | n/a (n=0) |"), "{md}");
    assert!(md.contains("n/a (0/0)"), "{md}");
    assert_eq!(r.weeks.len(), WEEKS as usize);
}

fn paver(args: &[&str], url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_paver"))
        .args(args)
        .env_remove("PAVER_CONFIG")
        .env("PAVER_DATABASE__URL", url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "paver {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn paver_report_prints_json_csv_and_markdown() {
    let t = support::test_db().await;
    seed(&t.db).await;
    let built = report::build(&t.db, &catalog(), &scope(None))
        .await
        .unwrap();
    // The command adds what Paver's creations cost (the seeded requests
    // carry no estimate: nothing, in the default currency).
    let prices = paver::domain::PriceTable::default();
    let want = report::with_cost(built, &t.db, &catalog(), &prices)
        .await
        .unwrap();
    assert_eq!(want.cost.as_ref().unwrap().monthly_total_cents, 0);
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog.yaml");
    std::fs::write(&cat, CATALOG).unwrap();
    let cat = cat.to_str().unwrap();
    let window = [
        "--since",
        "2026-09-07",
        "--until",
        "2026-10-19",
        "--catalog",
        cat,
    ];
    let run = |format: &str| {
        let mut args = vec!["report", "--format", format];
        args.extend(window);
        paver(&args, &t.url)
    };

    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(json, serde_json::to_value(&want).unwrap());
    assert_eq!(json["since"], "2026-09-07T00:00:00Z");
    assert!(
        json["dora"]["overall"]["change_failure"]["den"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(json["cost"]["currency"], "USD");

    let csv = run("csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("section,team,service,action,week,figure,value,numerator,denominator")
    );
    assert!(lines.all(|l| l.split(',').count() == 9), "{csv}");
    assert!(csv.contains(&format!(
        "self_service,,,,,requests,{},,",
        want.self_service.requests
    )));
    assert!(csv.contains("week,,,,2026-09-07,deployments,"));
    assert!(csv.contains("cost,,,,,monthly_cost_cents_USD,0,,"), "{csv}");
    let overall = &want.dora.overall.change_failure;
    assert!(csv.contains(&format!(
        "dora,,,,,change_failure,{:.4},{},{}",
        overall.ratio().unwrap(),
        overall.num,
        overall.den
    )));
    assert!(csv.contains("dora_service,team-y,svc-c,,,deployments,"));
    assert!(
        csv.contains("dora_team,,,,,deployments,"),
        "the unowned services"
    );

    let md = run("md");
    assert_eq!(md, report::render::markdown(&want));
    assert!(md.starts_with("# Platform report"));
    assert!(md.contains("| svc-c |"));
}

// ----- the weekly digest --------------------------------------------------------

/// Monday 2026-10-19 09:05 UTC: the digest of "0 9 * * Mon" is due.
fn digest_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 19, 9, 5, 0).unwrap()
}

fn digest_config(channel: &str) -> ReportConfig {
    ReportConfig {
        digest_schedule: Some(Cron::parse("0 9 * * Mon").unwrap()),
        channels: vec![ChannelRef::parse(channel).unwrap()],
        weeks: 6,
        ..ReportConfig::default()
    }
}

/// A Slack Web API with the external upload flow; `upload_ok: false`
/// refuses `files.getUploadURLExternal`.
async fn fake_slack(upload_ok: bool) -> fake::FakeServer {
    let base: Arc<OnceLock<String>> = Arc::default();
    let me = base.clone();
    let server = fake::serve(move |r| {
        let base = me.clone();
        async move {
            let method = r.path.rsplit('/').next().unwrap_or_default().to_owned();
            match method.as_str() {
                "chat.postMessage" => fake::json(
                    200,
                    json!({"ok": true, "channel": "C0PLATFORM", "ts": "1700000000.000100",
                           "message": {"type": "message", "text": "x", "ts": "1700000000.000100", "user": "U0BOT", "bot_id": "B1"}}),
                ),
                "files.getUploadURLExternal" if upload_ok => fake::json(
                    200,
                    json!({"ok": true, "upload_url": format!("{}/upload/F0CHART", base.get().unwrap()), "file_id": "F0CHART"}),
                ),
                "files.getUploadURLExternal" => {
                    fake::json(200, json!({"ok": false, "error": "not_allowed_token_type"}))
                }
                "F0CHART" => axum::response::IntoResponse::into_response("OK - uploaded"),
                "files.completeUploadExternal" => fake::json(
                    200,
                    json!({"ok": true, "files": [{"id": "F0CHART", "title": "chart"}]}),
                ),
                _ => fake::json(200, json!({"ok": false, "error": "unknown_method"})),
            }
        }
    })
    .await;
    base.set(server.url.clone()).unwrap();
    server
}

fn slack_config(fake: &fake::FakeServer) -> Config {
    let mut config = Config::default();
    config.slack.bot_token = Some(SecretString::from("xoxb-test"));
    config.slack.api_url = url::Url::parse(&format!("{}/api/", fake.url)).unwrap();
    config
}

async fn replica(
    config: &Config,
    report: ReportConfig,
    of: Option<&TestPaver>,
    db: Option<support::TestDb>,
) -> TestPaver {
    let mut b = TestPaver::builder()
        .shared_catalog(SharedCatalog::new(catalog()))
        .settings(EngineSettings {
            report,
            ..EngineSettings::default()
        })
        .sinks(paver::server::sinks(config).unwrap());
    if let Some(other) = of {
        b = b.replica_of(other);
    }
    if let Some(tdb) = db {
        b = b.test_db(tdb);
    }
    b.start().await
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    (reader.info().width, reader.info().height)
}

#[tokio::test]
async fn the_digest_posts_once_with_its_chart_uploaded_to_slack_across_replicas() {
    let slack = fake_slack(true).await;
    let config = slack_config(&slack);
    let tdb = support::test_db().await;
    seed(&tdb.db).await;
    let a = replica(&config, digest_config("slack:C0PLATFORM"), None, Some(tdb)).await;
    let b = replica(&config, digest_config("slack:C0PLATFORM"), Some(&a), None).await;

    // Two replicas run the same period at once: one posts.
    let now = digest_time();
    let (ra, rb) = tokio::join!(a.engine.report().run(now), b.engine.report().run(now));
    let outcomes = [ra.unwrap(), rb.unwrap()];
    assert!(
        outcomes.contains(&DigestOutcome::Posted { chart: true }),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&DigestOutcome::AlreadyPosted),
        "{outcomes:?}"
    );
    // Their schedulers' ticks: one holds the lease, and the period is done.
    let ta = a.engine.report().tick("replica-a", now).await.unwrap();
    let tb = b.engine.report().tick("replica-b", now).await.unwrap();
    assert_eq!(ta, Some(DigestOutcome::AlreadyPosted));
    assert_eq!(tb, None, "replica-b does not hold the lease");
    a.idle().await;
    b.idle().await;

    let posts: Vec<_> = slack
        .all()
        .into_iter()
        .filter(|r| r.path.ends_with("chat.postMessage"))
        .collect();
    assert_eq!(posts.len(), 1);
    let post = posts[0].body.clone().unwrap();
    assert_eq!(post["channel"], "C0PLATFORM");
    let text = post.to_string();
    assert!(
        text.contains("Platform report — 2026-09-07 to 2026-10-18"),
        "{text}"
    );
    // The six whole weeks before the digest's: the seeded history's.
    let want = report::build(a.db(), &catalog(), &scope(None))
        .await
        .unwrap();
    assert!(
        text.contains(&format!("*Requests*\\n{}", want.self_service.requests)),
        "{text}"
    );
    assert!(
        text.contains(&want.dora.overall.change_failure.display()),
        "{text}"
    );
    assert!(text.contains("Change failure"), "{text}");
    assert!(text.contains("db password rotate"), "{text}");

    // The chart: getUploadURLExternal (name, length), the bytes, complete.
    let all = slack.all();
    let ask: Vec<_> = all
        .iter()
        .filter(|r| r.path.ends_with("files.getUploadURLExternal"))
        .collect();
    assert_eq!(ask.len(), 1);
    let q = |k: &str| {
        ask[0]
            .query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        q("filename").as_deref(),
        Some("platform-report-2026-10-19.png")
    );
    let bytes: Vec<_> = all.iter().filter(|r| r.path == "/upload/F0CHART").collect();
    assert_eq!(bytes.len(), 1);
    assert_eq!(q("length"), Some(bytes[0].raw_body.len().to_string()));
    assert_eq!(
        png_size(&bytes[0].raw_body),
        (report::chart::WIDTH, report::chart::HEIGHT)
    );
    let complete: Vec<_> = all
        .iter()
        .filter(|r| r.path.ends_with("files.completeUploadExternal"))
        .collect();
    assert_eq!(complete.len(), 1);
    let body: Value = complete[0]
        .body
        .clone()
        .unwrap_or_else(|| serde_json::from_slice(&complete[0].raw_body).unwrap());
    assert_eq!(body["channel_id"], "C0PLATFORM");
    assert_eq!(body["files"][0]["id"], "F0CHART");
}

#[tokio::test]
async fn a_failed_upload_leaves_the_text_digest_posted() {
    let slack = fake_slack(false).await;
    let config = slack_config(&slack);
    let a = replica(&config, digest_config("slack:C0PLATFORM"), None, None).await;
    seed(a.db()).await;
    assert_eq!(
        a.engine.report().run(digest_time()).await.unwrap(),
        DigestOutcome::Posted { chart: true }
    );
    a.idle().await;
    assert_eq!(slack.count("POST", "chat.postMessage"), 1);
    assert_eq!(slack.count("GET", "files.getUploadURLExternal"), 1);
    assert_eq!(slack.count("POST", "files.completeUploadExternal"), 0);
}

#[tokio::test]
async fn the_chart_goes_to_discord_as_a_message_attachment() {
    let discord = fake::serve(|r| async move {
        if r.path.ends_with("/messages") {
            fake::json(200, json!({"id": "2000", "channel_id": "1000"}))
        } else {
            fake::json(404, json!({"code": 0, "message": "no"}))
        }
    })
    .await;
    let mut config = Config::default();
    config.discord.token = Some(SecretString::from("test-bot-token"));
    config.discord.api_url = url::Url::parse(&format!("{}/api/v10", discord.url)).unwrap();
    let a = replica(&config, digest_config("discord:1000"), None, None).await;
    seed(a.db()).await;
    assert_eq!(
        a.engine.report().run(digest_time()).await.unwrap(),
        DigestOutcome::Posted { chart: true }
    );
    a.idle().await;
    let posts: Vec<_> = discord
        .all()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v10/channels/1000/messages")
        .collect();
    assert_eq!(posts.len(), 2, "the digest, then the chart");
    assert!(posts[0].body.is_some(), "the digest is JSON");
    let form = &posts[1];
    assert!(form
        .header("content-type")
        .is_some_and(|c| c.starts_with("multipart/form-data")));
    let raw = &form.raw_body;
    let find = |needle: &[u8]| raw.windows(needle.len()).position(|w| w == needle);
    assert!(find(b"name=\"payload_json\"").is_some());
    assert!(find(b"name=\"files[0]\"; filename=\"platform-report-2026-10-19.png\"").is_some());
    let start = find(b"\x89PNG").expect("the PNG is in the form");
    let end = find(b"IEND").expect("the PNG ends") + 8;
    assert_eq!(
        png_size(&raw[start..end]),
        (report::chart::WIDTH, report::chart::HEIGHT)
    );
}

#[tokio::test]
async fn without_a_schedule_nothing_is_posted_or_scheduled() {
    let a = replica(&Config::default(), ReportConfig::default(), None, None).await;
    assert_eq!(
        a.engine.report().run(digest_time()).await.unwrap(),
        DigestOutcome::NotScheduled
    );
    assert!(a.engine.report().lease("x").is_none());
}

// ----- /metrics -------------------------------------------------------------------

/// The value of `name{labels}` in a Prometheus text exposition.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let key = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .map(|v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn metrics_expose_the_reports_figures() {
    let t = support::test_db().await;
    seed(&t.db).await;
    let r = report::build(&t.db, &catalog(), &scope(None))
        .await
        .unwrap();
    let handle = paver::util::metrics::install().unwrap();
    report::digest::set_gauges(&r);
    let text = paver::util::metrics::render(&handle, || {});
    assert_eq!(
        sample(&text, "paver_report_requests", ""),
        Some(r.self_service.requests as f64)
    );
    assert_eq!(
        sample(&text, "paver_report_deployments", ""),
        Some(r.dora.overall.deployments as f64)
    );
    assert_eq!(
        sample(&text, "paver_report_questions", ""),
        Some(r.questions.asked as f64)
    );
    let p90 = r.dora.overall.lead_time.p90_ms.unwrap() as f64 / 1000.0;
    assert_eq!(
        sample(
            &text,
            "paver_report_duration_seconds",
            "figure=\"lead_time\",percentile=\"p90\""
        ),
        Some(p90)
    );
    assert_eq!(
        sample(&text, "paver_report_ratio", "figure=\"change_failure\""),
        r.dora.overall.change_failure.ratio()
    );

    // A scrape rebuilds them over the last `weeks` weeks, at most once per
    // metrics_refresh_secs: here the window holds nothing, so n/a is NaN.
    let a = replica(&Config::default(), ReportConfig::default(), None, Some(t)).await;
    a.engine.report().refresh_gauges().await.unwrap();
    let text = paver::util::metrics::render(&handle, || {});
    assert_eq!(sample(&text, "paver_report_requests", ""), Some(0.0));
    assert!(
        sample(&text, "paver_report_ratio", "figure=\"change_failure\"")
            .unwrap()
            .is_nan()
    );
}
