//! Deploy notifications, driven as the senders drive them: real HTTP
//! requests to `paver serve`'s hook routes on loopback, with GitHub's own
//! payload examples (the repository rewritten to a catalog service here,
//! never in the corpus), an Argo CD body rendered from the README's
//! `argocd-notifications-cm` template, and the generic hook.

mod support;

use std::sync::Arc;
use std::time::Duration;

use paver::chat::dispatcher::Pace;
use paver::chat::Message;
use paver::config::Config;
use paver::domain::{RequestState, ServiceName};
use paver::drivers::http::sign_callback;
use paver::notify::{ChannelRef, NotifyConfig};
use secrecy::SecretString;
use serde_json::{json, Value};
use support::paver::TestPaver;
use support::{RecordingSink, Sent};

const GITHUB_SECRET: &str = "gh-hook-secret";
const ARGOCD_SECRET: &str = "argo-hook-secret";
const GENERIC_SECRET: &str = "generic-hook-secret";
const EXAMPLES: &str = "../shared/corpus/github/payload-examples";

fn config(notify: NotifyConfig) -> Config {
    let mut c = Config::default();
    c.hooks.github_secret = Some(SecretString::from(GITHUB_SECRET.to_owned()));
    c.hooks.argocd_secret = Some(SecretString::from(ARGOCD_SECRET.to_owned()));
    c.hooks.generic_secret = Some(SecretString::from(GENERIC_SECRET.to_owned()));
    c.notify = notify;
    c
}

fn channels(list: &[&str]) -> Vec<ChannelRef> {
    list.iter().map(|c| ChannelRef::parse(c).unwrap()).collect()
}

fn notify_config() -> NotifyConfig {
    NotifyConfig {
        production_channels: channels(&["slack:C0DEPLOYS"]),
        platform_channels: channels(&["slack:C0PLATFORM"]),
        ..NotifyConfig::default()
    }
}

/// A Paver with a recording Slack sink and its hooks served on loopback.
struct Harness {
    paver: TestPaver,
    slack: RecordingSink,
    base: String,
    http: reqwest::Client,
}

impl Harness {
    async fn start(notify: NotifyConfig) -> Harness {
        let slack = RecordingSink::default();
        let paver = TestPaver::builder()
            .sink("slack", Arc::new(slack.clone()))
            .start()
            .await;
        let base = paver.serve(&config(notify)).await;
        Harness {
            paver,
            slack,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn github(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        secret: &str,
    ) -> (u16, String) {
        let sig = {
            use hmac::{Hmac, Mac};
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        };
        let r = self
            .http
            .post(format!("{}/hooks/github", self.base))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", sig)
            .header("Content-Type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn generic(&self, body: &Value) -> (u16, String) {
        let r =
            support::post_generic_hook(&self.http, &self.base, GENERIC_SECRET, body.to_string())
                .await;
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn generic_signed(&self, body: &str, ts: i64, sig: &str) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}/hooks/generic", self.base))
            .header("X-Paver-Timestamp", ts.to_string())
            .header("X-Paver-Signature", sig)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn argocd(&self, body: &str, auth: &str) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}/hooks/argocd", self.base))
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Waits until the outbox is empty (everything sent).
    async fn delivered(&self) {
        self.paver.idle().await;
    }

    /// Posts to `channel` (not edits), newest last.
    fn posts_in(&self, channel: &str) -> Vec<Message> {
        self.slack
            .all()
            .into_iter()
            .filter_map(|s| match s {
                Sent::Post {
                    channel: c,
                    message,
                    ..
                } if c == channel => Some(message),
                _ => None,
            })
            .collect()
    }

    /// What `channel`'s notice shows now: its post, then every edit of it.
    fn notice_in(&self, channel: &str) -> Message {
        let all = self.slack.all();
        let Some((r, first)) = all.iter().find_map(|s| match s {
            Sent::Post {
                channel: c,
                r#ref,
                message,
                ..
            } if c == channel => Some((r#ref.clone(), message.clone())),
            _ => None,
        }) else {
            panic!("nothing posted in {channel}: {}", self.slack.transcript())
        };
        all.iter()
            .rev()
            .find_map(|s| match s {
                Sent::Update { r#ref, message, .. } if *r#ref == r => Some(message.clone()),
                _ => None,
            })
            .unwrap_or(first)
    }
}

/// A GitHub payload example with its repository made a catalog service's.
fn example(path: &str, slug: &str, environment: Option<&str>) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(format!("{EXAMPLES}/{path}")).unwrap()).unwrap();
    v["repository"]["full_name"] = json!(slug);
    if let Some(env) = environment {
        v["deployment"]["environment"] = json!(env);
    }
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn a_github_deployment_reaches_the_owning_team_once_and_is_edited_as_it_goes() {
    let h = Harness::start(notify_config()).await;
    // order-service is team-commerce's; its channel is C0COMMERCE.
    let created = example(
        "deployment/payload.json",
        "acme/order-service",
        Some("staging"),
    );
    let (code, _) = h.github("deployment", "d-1", &created, GITHUB_SECRET).await;
    assert_eq!(code, 202);
    let mut status: Value = serde_json::from_slice(&example(
        "deployment_status/payload.json",
        "acme/order-service",
        Some("staging"),
    ))
    .unwrap();
    status["deployment_status"]["environment_url"] = json!("https://order-service.staging.example");
    let (code, body) = h
        .github(
            "deployment_status",
            "d-2",
            status.to_string().as_bytes(),
            GITHUB_SECRET,
        )
        .await;
    assert_eq!(code, 202, "{body}");
    h.delivered().await;
    assert_eq!(
        h.posts_in("C0COMMERCE").len(),
        1,
        "{}",
        h.slack.transcript()
    );
    let notice = h.notice_in("C0COMMERCE");
    assert_eq!(
        notice.title.as_deref(),
        Some("order-service staging: deployed")
    );
    assert_eq!(notice.text, "queued → deployed");
    assert!(notice
        .fields
        .contains(&("URL".into(), "https://order-service.staging.example".into())));
    // Staging is not production: the deploys channel hears nothing.
    assert!(h.posts_in("C0DEPLOYS").is_empty());

    // A redelivery (same X-GitHub-Delivery) is acknowledged and dropped.
    let before = h.slack.all().len();
    let (code, body) = h
        .github(
            "deployment_status",
            "d-2",
            status.to_string().as_bytes(),
            GITHUB_SECRET,
        )
        .await;
    assert_eq!(
        (code, body.contains("already received")),
        (200, true),
        "{body}"
    );
    h.delivered().await;
    assert_eq!(h.slack.all().len(), before);
    let events = h
        .paver
        .db()
        .deploys()
        .events(&ServiceName::parse("order-service").unwrap())
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn github_hooks_refuse_bad_signatures_and_name_what_is_malformed() {
    let h = Harness::start(notify_config()).await;
    let body = example("deployment_status/payload.json", "acme/order-service", None);
    let (code, text) = h
        .github("deployment_status", "x-1", &body, "not the secret")
        .await;
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("does not match"), "{text}");
    // Unsigned.
    let r = h
        .http
        .post(format!("{}/hooks/github", h.base))
        .header("X-GitHub-Event", "deployment_status")
        .header("X-GitHub-Delivery", "x-2")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Signed but broken: 400 naming the field.
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["deployment"]
        .as_object_mut()
        .unwrap()
        .remove("environment");
    let (code, text) = h
        .github(
            "deployment_status",
            "x-3",
            v.to_string().as_bytes(),
            GITHUB_SECRET,
        )
        .await;
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains("deployment") && text.contains("environment"),
        "{text}"
    );
    let (code, _) = h
        .github("deployment_status", "x-4", b"{not json", GITHUB_SECRET)
        .await;
    assert_eq!(code, 400);
    // Other events are acknowledged and ignored; so is a Pages deployment.
    let (code, text) = h
        .github("ping", "x-5", b"{\"zen\":\"hi\"}", GITHUB_SECRET)
        .await;
    assert_eq!(code, 200, "{text}");
    let pages = example(
        "deployment_status/gh-pages.payload.json",
        "acme/order-service",
        None,
    );
    let (code, text) = h
        .github("deployment_status", "x-6", &pages, GITHUB_SECRET)
        .await;
    assert!(code == 202 || code == 200, "{code} {text}");
    h.delivered().await;
    assert!(h.slack.all().is_empty(), "{}", h.slack.transcript());
}

#[tokio::test]
async fn a_deploy_of_an_unknown_service_is_told_to_the_platform_team_once_a_day() {
    let h = Harness::start(notify_config()).await;
    let body = example("deployment_status/payload.json", "someone/else", None);
    for i in 0..3 {
        let (code, text) = h
            .github("deployment_status", &format!("u-{i}"), &body, GITHUB_SECRET)
            .await;
        assert_eq!(code, 202, "{text}");
        assert!(text.contains("no catalog service"), "{text}");
    }
    let (code, _) = h
        .generic(
            &json!({"service": "ghost-service", "environment": "staging", "status": "healthy"}),
        )
        .await;
    assert_eq!(code, 202);
    h.delivered().await;
    let notes = h.posts_in("C0PLATFORM");
    assert_eq!(notes.len(), 2, "{}", h.slack.transcript());
    assert!(notes[0].text.contains("someone/else"), "{}", notes[0].text);
    assert!(notes[1].text.contains("ghost-service"), "{}", notes[1].text);
    // Nobody else was told anything.
    assert_eq!(h.slack.all().len(), 2);
}

#[tokio::test]
async fn the_generic_hook_is_signed_replay_proof_and_names_bad_fields() {
    let h = Harness::start(notify_config()).await;
    let event = json!({
        "service": "order-service", "environment": "production", "status": "healthy",
        "version": "2.5.0", "url": "https://order-service.example", "commit": "4a1b2c3d",
        "message": "<!channel> rolled out `2.5.0`", "started_at": "2026-11-27T10:00:00Z"
    });
    let body = event.to_string();
    let ts = chrono::Utc::now().timestamp();
    let sig = sign_callback(
        GENERIC_SECRET,
        ts,
        "POST",
        "/hooks/generic",
        body.as_bytes(),
    );
    let (code, text) = h.generic_signed(&body, ts, &sig).await;
    assert_eq!(code, 202, "{text}");
    // The same signed request again: a replay.
    let (code, _) = h.generic_signed(&body, ts, &sig).await;
    assert_eq!(code, 409);
    let forged = sign_callback("guess", ts, "POST", "/hooks/generic", body.as_bytes());
    assert_eq!(h.generic_signed(&body, ts, &forged).await.0, 401);
    let stale = ts - 3_600;
    let old = sign_callback(
        GENERIC_SECRET,
        stale,
        "POST",
        "/hooks/generic",
        body.as_bytes(),
    );
    assert_eq!(h.generic_signed(&body, stale, &old).await.0, 401);
    let (code, text) = h
        .generic(
            &json!({"service": "order-service", "environment": "staging", "status": "wonderful"}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(text.contains("status"), "{text}");
    let (code, text) = h
        .generic(&json!({"service": "order-service", "status": "healthy"}))
        .await;
    assert_eq!(code, 400);
    assert!(text.contains("environment"), "{text}");
    h.delivered().await;
    // Production: the team and the deploys channel, each once.
    for channel in ["C0COMMERCE", "C0DEPLOYS"] {
        assert_eq!(
            h.posts_in(channel).len(),
            1,
            "{channel}: {}",
            h.slack.transcript()
        );
        let n = h.notice_in(channel);
        assert_eq!(
            n.title.as_deref(),
            Some("order-service production: 2.5.0 healthy")
        );
        // Someone else's text cannot ping a channel or open a code span.
        assert!(
            !n.text.contains("<!channel>") && !n.text.contains('`'),
            "{}",
            n.text
        );
    }
}

/// The README's Argo CD template, rendered the way Argo CD's notification
/// controller renders it (Go templates: `{{toJson .x}}`, `{{.x}}`,
/// `{{- if .x}}…{{- end}}`), over a real Application from the corpus.
fn render_readme_template(app: &Value) -> String {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let start = readme
        .find("  template.paver: |")
        .expect("the README's template");
    let body_at = start + readme[start..].find("body: |").unwrap();
    let template: String = readme[body_at..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("          "))
        .map(|l| format!("{}\n", &l[10..]))
        .collect();
    let ctx = json!({"app": app, "context": {"argocdUrl": "https://argocd.example"}});
    let lookup = |path: &str| -> Value {
        let mut v = &ctx;
        for part in path.trim_start_matches('.').split('.') {
            v = v.get(part).unwrap_or(&Value::Null);
        }
        v.clone()
    };
    let mut out = String::new();
    let mut skipping: Vec<bool> = Vec::new();
    let mut rest = template.as_str();
    while let Some(open) = rest.find("{{") {
        let text = &rest[..open];
        if !skipping.iter().any(|s| *s) {
            out.push_str(text);
        }
        let close = open + rest[open..].find("}}").unwrap();
        let mut action = rest[open + 2..close].trim();
        if let Some(a) = action.strip_prefix('-') {
            action = a.trim();
            if !skipping.iter().any(|s| *s) {
                let trimmed = out.trim_end().len();
                out.truncate(trimmed);
            }
        }
        rest = &rest[close + 2..];
        let skip = skipping.iter().any(|s| *s);
        if let Some(path) = action.strip_prefix("if ") {
            let v = lookup(path.trim());
            skipping.push(v.is_null() || v == json!(false) || v == json!(""));
        } else if action == "end" {
            skipping.pop();
        } else if skip {
        } else if let Some(path) = action.strip_prefix("toJson ") {
            out.push_str(&lookup(path.trim()).to_string());
        } else {
            match lookup(action) {
                Value::String(s) => out.push_str(&s),
                other => out.push_str(&other.to_string()),
            }
        }
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn argo_cd_notifications_from_the_readme_template_are_read_and_authenticated() {
    let h = Harness::start(notify_config()).await;
    let mut app: Value = serde_json::from_str(
        &std::fs::read_to_string("../shared/corpus/argocd/application_with_status.json").unwrap(),
    )
    .unwrap();
    // The application Paver's Argo CD driver would use for checkout-api in
    // staging (`{{ app }}-{{ environment }}`); team-commerce owns it.
    app["metadata"]["name"] = json!("checkout-api-staging");
    app["status"]["summary"] = json!({
        "images": ["ghcr.io/acme/checkout-api:3.1.0"],
        "externalURLs": ["https://checkout-api.staging.example"]
    });
    let body = render_readme_template(&app);
    let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert_eq!(parsed["app"], "checkout-api-staging");

    assert_eq!(h.argocd(&body, "Bearer wrong").await.0, 401);
    assert_eq!(h.argocd(&body, "").await.0, 401);
    let (code, text) = h.argocd(&body, &format!("Bearer {ARGOCD_SECRET}")).await;
    assert_eq!(code, 202, "{text}");
    // Argo CD's basic auth works too; the same body again is the same news.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("argocd:{ARGOCD_SECRET}"));
    let (code, text) = h.argocd(&body, &format!("Basic {basic}")).await;
    assert_eq!((code, text.contains("already")), (200, true), "{text}");
    // An application no service maps to is unknown, not guessed.
    let mut stranger = app.clone();
    stranger["metadata"]["name"] = json!("checkout-api-staging-copy");
    let (code, text) = h
        .argocd(
            &render_readme_template(&stranger),
            &format!("Bearer {ARGOCD_SECRET}"),
        )
        .await;
    assert_eq!(code, 202);
    assert!(text.contains("no catalog service"), "{text}");
    let (code, text) = h
        .argocd(
            r#"{"app": "x", "phase": "Exploded"}"#,
            &format!("Bearer {ARGOCD_SECRET}"),
        )
        .await;
    assert_eq!(code, 400);
    assert!(text.contains("phase"), "{text}");
    h.delivered().await;
    let n = h.notice_in("C0COMMERCE");
    assert_eq!(
        n.title.as_deref(),
        Some("checkout-api staging: 3.1.0 healthy")
    );
    assert!(n
        .fields
        .contains(&("URL".into(), "https://checkout-api.staging.example".into())));
}

#[tokio::test]
async fn a_deploy_paver_ran_is_told_in_its_thread_and_its_card_says_how_it_went() {
    let h = Harness::start(notify_config()).await;
    let id = h
        .paver
        .propose("alice", "deploy order-service 2.5.0 to staging")
        .await;
    h.paver.press("alice", &id, "Deploy").await;
    assert_eq!(h.paver.request(&id).await.state, RequestState::Succeeded);
    let card = h.paver.card_ref(&id);
    for status in ["in_progress", "healthy"] {
        let (code, text) = h
            .generic(&json!({
                "service": "order-service", "environment": "staging", "status": status,
                "version": "2.5.0", "url": "https://order-service.staging.example"
            }))
            .await;
        assert_eq!(code, 202, "{text}");
    }
    h.delivered().await;
    // In the request's thread (on the console, where it was asked), once.
    let in_thread: Vec<_> = h
        .paver
        .sink
        .all()
        .into_iter()
        .filter_map(|s| match s {
            Sent::Post {
                thread: Some(t),
                message,
                ..
            } if t == card
                && message
                    .title
                    .as_deref()
                    .is_some_and(|t| t.contains("order-service staging")) =>
            {
                Some(message)
            }
            _ => None,
        })
        .collect();
    assert_eq!(in_thread.len(), 1, "{}", h.paver.transcript());
    let card = h.paver.latest_card(&id);
    assert!(
        card.fields.contains(&(
            "Deploy".into(),
            "deployed 2.5.0 to staging — healthy — https://order-service.staging.example".into()
        )),
        "{card:?}"
    );
    // The team channel hears it too (the request was asked elsewhere).
    assert!(h.notice_in("C0COMMERCE").context.unwrap().contains(&id));
    // A deploy of another version is not this request's.
    let (code, _) = h
        .generic(&json!({"service": "order-service", "environment": "dev", "status": "healthy", "version": "9.9.9"}))
        .await;
    assert_eq!(code, 202);
}

#[tokio::test]
async fn team_rules_quiet_what_a_team_does_not_want_but_never_a_failure() {
    let mut notify = notify_config();
    notify.teams.insert(
        "team-commerce".into(),
        toml::from_str("environments = [\"production\"]").unwrap(),
    );
    let h = Harness::start(notify).await;
    let (code, text) = h
        .generic(&json!({"service": "order-service", "environment": "staging", "status": "healthy", "version": "1.0.0"}))
        .await;
    assert_eq!(code, 202);
    assert!(text.contains("no channel wants"), "{text}");
    h.delivered().await;
    assert!(h.slack.all().is_empty(), "{}", h.slack.transcript());
    let (code, _) = h
        .generic(&json!({"service": "order-service", "environment": "staging", "status": "failed", "version": "1.0.1", "message": "readiness probe failed"}))
        .await;
    assert_eq!(code, 202);
    h.delivered().await;
    let n = h.notice_in("C0COMMERCE");
    assert_eq!(
        n.title.as_deref(),
        Some("order-service staging: 1.0.1 failed")
    );
    assert!(n.text.contains("readiness probe failed"), "{}", n.text);
}

#[tokio::test]
async fn hooks_without_a_secret_do_not_exist() {
    let slack = RecordingSink::default();
    let paver = TestPaver::builder()
        .sink("slack", Arc::new(slack.clone()))
        .start()
        .await;
    let base = paver.serve(&Config::default()).await;
    for hook in ["github", "argocd", "generic"] {
        let r = reqwest::Client::new()
            .post(format!("{base}/hooks/{hook}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{hook}");
    }
}

/// A Slack stand-in shared by replicas: every send, with when it happened.
#[derive(Clone, Default)]
struct TimedSink {
    log: Arc<std::sync::Mutex<Vec<Timed>>>,
}

#[derive(Clone, Debug)]
struct Timed {
    channel: String,
    at: std::time::Instant,
    /// The message's platform id (a post's new one, an edit's target).
    r#ref: String,
    post: bool,
    message: Message,
}

impl TimedSink {
    fn record(&self, channel: &str, r: Option<&str>, post: bool, message: &Message) -> String {
        let mut log = self.log.lock().unwrap();
        let r = r
            .map(str::to_owned)
            .unwrap_or_else(|| format!("m-{}", log.len() + 1));
        log.push(Timed {
            channel: channel.into(),
            at: std::time::Instant::now(),
            r#ref: r.clone(),
            post,
            message: message.clone(),
        });
        r
    }
}

#[async_trait::async_trait]
impl paver::chat::ChatSink for TimedSink {
    async fn post(
        &self,
        channel: &str,
        _thread: Option<&str>,
        message: &Message,
    ) -> Result<String, paver::chat::SendError> {
        Ok(self.record(channel, None, true, message))
    }
    async fn update(
        &self,
        channel: &str,
        message_ref: &str,
        message: &Message,
    ) -> Result<(), paver::chat::SendError> {
        self.record(channel, Some(message_ref), false, message);
        Ok(())
    }
    async fn ephemeral(
        &self,
        channel: &str,
        _user: &str,
        _thread: Option<&str>,
        message: &Message,
    ) -> Result<(), paver::chat::SendError> {
        self.record(channel, None, true, message);
        Ok(())
    }
}

/// 1,000 hooks for the catalog's 20 services, sent to two replicas on one
/// database, each service's events in order (as a deploy's events come),
/// the services at once: every event is recorded, every notice ends on its
/// service's last event, each service and environment is posted once per
/// channel, and the rest are edits (coalesced while they wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_a_thousand_hooks_for_twenty_services_is_told_completely_and_quietly() {
    const PER_SERVICE: usize = 50;
    let sink = TimedSink::default();
    // Each channel at most one send per PACE, kept across both replicas.
    // PAVER_BURST_PACE_MS=1000 measures it at Slack's real pace.
    let pace_ms = std::env::var("PAVER_BURST_PACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let pace_every = Duration::from_millis(pace_ms);
    let pace = || Pace::none().every(paver::chat::Platform::Slack, pace_every);
    let a = TestPaver::builder()
        .sink("slack", Arc::new(sink.clone()))
        .pace(pace())
        .start()
        .await;
    let b = TestPaver::builder()
        .sink("slack", Arc::new(sink.clone()))
        .pace(pace())
        .replica_of(&a)
        .start()
        .await;
    let cfg = config(NotifyConfig {
        default_channels: channels(&["slack:C0PLATFORM"]),
        production_channels: channels(&["slack:C0DEPLOYS"]),
        ..NotifyConfig::default()
    });
    let bases = [a.serve(&cfg).await, b.serve(&cfg).await];
    let catalog = a.catalog.current();
    let services: Vec<String> = catalog.components().map(|c| c.name.to_string()).collect();
    assert_eq!(services.len(), 20);
    let event = |svc: &str, k: usize| {
        let env = ["staging", "production"][k % 2];
        let status = ["in_progress", "deployed", "healthy"][(k / 2) % 3];
        let version = format!("1.0.{}", k / 6);
        (
            env,
            status,
            version,
            json!({
                "id": format!("{svc}-{k}"), "service": svc, "environment": env,
                "status": status, "version": format!("1.0.{}", k / 6),
            }),
        )
    };
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, svc) in services.iter().cloned().enumerate() {
        let bases = bases.clone();
        tasks.spawn(async move {
            let http = reqwest::Client::new();
            for k in 0..PER_SERVICE {
                let (_, _, _, body) = event(&svc, k);
                let base = &bases[(i + k) % 2];
                let r =
                    support::post_generic_hook(&http, base, GENERIC_SECRET, body.to_string()).await;
                assert_eq!(
                    r.status().as_u16(),
                    202,
                    "{svc} #{k}: {}",
                    r.text().await.unwrap()
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let accepted = started.elapsed();
    for p in [&a, &b] {
        assert!(p.engine.wait_idle(Duration::from_secs(600)).await.unwrap());
    }
    let delivered = started.elapsed();

    use sqlx::Row;
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM deploy_events")
        .fetch_one(a.db().pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(n, (services.len() * PER_SERVICE) as i64);

    let log = sink.log.lock().unwrap().clone();
    // What each message shows at the end: its post, then its last edit.
    let mut last: std::collections::HashMap<String, (String, Message)> = Default::default();
    for t in &log {
        last.insert(t.r#ref.clone(), (t.channel.clone(), t.message.clone()));
    }
    for svc in &services {
        let team = catalog
            .component(svc)
            .unwrap()
            .owner
            .as_ref()
            .map(|o| o.to_string());
        let team_channel = match team.as_deref() {
            Some(t) => catalog.group(t).unwrap().slack_channel.clone().unwrap(),
            None => "C0PLATFORM".into(),
        };
        for (env, final_k) in [
            ("staging", PER_SERVICE - 2),
            ("production", PER_SERVICE - 1),
        ] {
            let (_, status, version, _) = event(svc, final_k);
            let word = paver::domain::DeployStatus::parse(status).unwrap().word();
            let title = format!("{svc} {env}: {version} {word}");
            let mut where_: Vec<&str> = vec![team_channel.as_str()];
            if env == "production" {
                where_.push("C0DEPLOYS");
            }
            for channel in where_ {
                let shown: Vec<_> = last
                    .values()
                    .filter(|(c, m)| {
                        c == channel
                            && m.title
                                .as_deref()
                                .is_some_and(|t| t.starts_with(&format!("{svc} {env}:")))
                    })
                    .collect();
                assert_eq!(
                    shown.len(),
                    1,
                    "{svc} {env} in {channel}: one message, not {}",
                    shown.len()
                );
                assert_eq!(
                    shown[0].1.title.as_deref(),
                    Some(title.as_str()),
                    "{svc} {env} in {channel}"
                );
            }
        }
    }
    // The closest two sends to one channel came.
    let mut by_channel: std::collections::HashMap<&str, Vec<std::time::Instant>> =
        Default::default();
    for t in &log {
        by_channel.entry(&t.channel).or_default().push(t.at);
    }
    let closest = by_channel
        .values_mut()
        .filter_map(|times| {
            times.sort();
            times.windows(2).map(|w| w[1] - w[0]).min()
        })
        .min()
        .unwrap_or_default();
    // A few ms for the clock reads around a send.
    assert!(
        closest + Duration::from_millis(8) >= pace_every,
        "two sends to one channel {closest:?} apart (pace {pace_every:?})"
    );
    let posts = log.iter().filter(|t| t.post).count();
    // 20 services × 2 environments in their team's channel, and the 20
    // production ones in the deploys channel.
    assert_eq!(posts, 60, "posts");
    eprintln!(
        "burst: {} events accepted in {:.2?}, all delivered in {:.2?}; {} messages sent ({} posts, {} edits) = {:.0} per 1,000 events; closest two sends to one channel {:.2?}",
        n,
        accepted,
        delivered,
        log.len(),
        posts,
        log.len() - posts,
        log.len() as f64 * 1000.0 / n as f64,
        closest
    );
}

/// Two replicas taking events for the same service and environment at the
/// same moment open one notice between them, not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_racing_on_one_deploy_post_one_notice() {
    let slack = RecordingSink::default();
    let a = TestPaver::builder()
        .sink("slack", Arc::new(slack.clone()))
        .start()
        .await;
    let b = TestPaver::builder()
        .sink("slack", Arc::new(slack.clone()))
        .replica_of(&a)
        .start()
        .await;
    let cfg = config(notify_config());
    let bases = [a.serve(&cfg).await, b.serve(&cfg).await];
    let http = reqwest::Client::new();
    let sends = (0..24).map(|i| {
        let status = ["in_progress", "deployed", "healthy"][i % 3];
        let body = json!({
            "id": format!("race-{i}"), "service": "billing-api", "environment": "staging",
            "status": status, "version": "3.0.0"
        })
        .to_string();
        support::post_generic_hook(&http, &bases[i % 2], GENERIC_SECRET, body)
    });
    for r in futures_util::future::join_all(sends).await {
        let code = r.status().as_u16();
        assert_eq!(code, 202, "{}", r.text().await.unwrap());
    }
    a.idle().await;
    b.idle().await;
    let posts = slack
        .all()
        .into_iter()
        .filter(|s| matches!(s, Sent::Post { channel, .. } if channel == "C0PAYMENTS"))
        .count();
    assert_eq!(posts, 1, "{}", slack.transcript());
}
