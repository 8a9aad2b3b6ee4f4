//! `paver bench events`: load on real `paver serve` processes, the way
//! Slack delivers it. The bench starts a recording fake of the Slack Web
//! API on loopback, launches one or more `paver serve` children (this
//! binary) on one database, fires signed `app_mention` events at them
//! (open loop at a fixed rate, or a burst as fast as they are acknowledged)
//! and reports:
//! - acknowledgement latency of each event (the HTTP answer Slack waits
//!   for; Slack gives up after 3 s);
//! - end to end: from sending the event to the card's `chat.postMessage`
//!   reaching the fake, and how many cards a second that makes;
//! - events that got no card (dropped), time from launch to the first
//!   answer, and each replica's resident memory when idle.
//!
//! The children run the configuration the bench is started with (the
//! working directory's `config/paver.toml` or `PAVER_CONFIG`) with the
//! rules parser, a scratch SQLite database (or `--database`), a scratch
//! GitOps repository and no channel pace (every event is in its own
//! thread, spread over `--channels` channels, 50 unless told; the pace is
//! a Slack limit, not work).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::{Path as AxPath, State};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SECRET: &str = "bench-signing-secret";
const TEAM: &str = "T0BENCH";
const BOT: &str = "U0PAVERBENCH";
/// A catalog user of the shipped example catalog (`config/catalog.yaml`):
/// requests need a known requester.
const DEFAULT_USER: &str = "U0ADA";

/// How long to wait for the last cards after the last event.
const DRAIN: Duration = Duration::from_secs(60);

/// `paver bench events`: what to send, and at what.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsBench {
    /// Events a second, sent on time whatever is in flight.
    #[arg(long, default_value_t = 500.0, conflicts_with = "burst")]
    pub rate: f64,
    /// How long to send at `--rate`.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// Send this many as fast as they are acknowledged instead.
    #[arg(long, value_name = "N")]
    pub burst: Option<usize>,
    /// Events in flight at once in a burst.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// `paver serve` processes, sent to in turn (several need --database postgres://…).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// The replicas' database (default: a scratch SQLite file).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// What each event asks.
    #[arg(long, default_value = "create staging for order-service with Postgres")]
    pub text: String,
    /// The Slack user id each event is from (a catalog user).
    #[arg(long, default_value = DEFAULT_USER)]
    pub user: String,
    /// Channels the events are spread over, in turn. Each channel's
    /// messages go out one after the other (in the order queued), and
    /// Slack takes about one message a second per channel: N events a
    /// second come from at least N channels in real life.
    #[arg(long, default_value_t = 50)]
    pub channels: usize,
}

/// What the fake Slack saw: when each card (a post in an event's thread)
/// arrived, by the event's `ts`.
#[derive(Default)]
pub(super) struct Seen {
    cards: Mutex<HashMap<String, Instant>>,
    pub(super) posts: Mutex<usize>,
    pub(super) updates: Mutex<usize>,
    other: Mutex<usize>,
    next_ts: Mutex<u64>,
    /// When the last call of any kind arrived.
    pub(super) last_call: Mutex<Option<Instant>>,
}

async fn fake_slack(
    State(seen): State<Arc<Seen>>,
    AxPath(method): AxPath<String>,
    body: Bytes,
) -> Response {
    *seen.last_call.lock().expect("not poisoned") = Some(Instant::now());
    let body: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
        Value::Object(
            url::form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    });
    let ts = {
        let mut t = seen.next_ts.lock().expect("not poisoned");
        *t += 1;
        format!("1800000000.{:06}", *t)
    };
    let channel = body
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or("C0")
        .to_owned();
    let reply = match method.as_str() {
        "auth.test" => json!({"ok": true, "url": "https://bench.slack.com/", "team": "bench",
            "user": "paver", "team_id": TEAM, "user_id": BOT, "bot_id": "B0BENCH"}),
        "chat.postMessage" => {
            *seen.posts.lock().expect("not poisoned") += 1;
            if let Some(thread) = body.get("thread_ts").and_then(Value::as_str) {
                seen.cards
                    .lock()
                    .expect("not poisoned")
                    .entry(thread.to_owned())
                    .or_insert_with(Instant::now);
            }
            json!({"ok": true, "channel": channel, "ts": ts,
                "message": {"type": "message", "text": "", "ts": ts, "user": BOT, "bot_id": "B0BENCH"}})
        }
        "chat.update" => {
            *seen.updates.lock().expect("not poisoned") += 1;
            let updated = body.get("ts").cloned().unwrap_or(json!(ts));
            json!({"ok": true, "channel": channel, "ts": updated, "text": "",
                "message": {"type": "message", "text": "", "user": BOT, "bot_id": "B0BENCH"}})
        }
        _ => {
            *seen.other.lock().expect("not poisoned") += 1;
            json!({"ok": true})
        }
    };
    axum::Json(reply).into_response()
}

/// Starts the recording fake Slack on loopback; its Web API base URL.
pub(super) async fn start_fake_slack(seen: Arc<Seen>) -> anyhow::Result<String> {
    let app = axum::Router::new()
        .route("/api/{method}", axum::routing::any(fake_slack))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let slack_api = format!("http://{}/api/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(slack_api)
}

/// A running `paver serve` child and where it listens.
pub(super) struct Replica {
    child: Child,
    pub(super) url: String,
}

/// CPU time (user and system) process `pid` has used so far, from
/// `/proc/<pid>/stat`: where a run's two cores went.
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| Duration::from_secs_f64(ticks as f64 / hz as f64))
}

impl Replica {
    fn cpu_time(&self) -> Option<Duration> {
        cpu_time(&self.child.id()?.to_string())
    }

    pub(super) fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// The most it was resident at once, so far.
    fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }
}

/// Starts replica `n` with the bench's settings and `env` on top.
pub(super) async fn launch(
    scratch: &Path,
    slack_api: &str,
    database: &str,
    n: usize,
    env: &[(&str, &str)],
) -> anyhow::Result<Replica> {
    let exe = std::env::current_exe().context("finding the paver binary")?;
    let mut cmd = Command::new(exe);
    // The children run what the bench's environment configures, but
    // nothing else of it: no tokens of a real workspace, no LLM.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PAVER_") && k != "PAVER_CONFIG" && k != "PAVER_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.arg("serve")
        .env("PAVER_SERVER__LISTEN", "127.0.0.1:0")
        .env("PAVER_DATABASE__URL", database)
        .env("PAVER_GITOPS__REPO", scratch.join(format!("gitops-{n}")))
        .env("PAVER_SLACK__API_URL", slack_api)
        .env("PAVER_SLACK__BOT_TOKEN", "xoxb-bench")
        .env("PAVER_SLACK__SIGNING_SECRET", SECRET)
        .env("PAVER_SLACK__MIN_INTERVAL_MS", "0")
        .env("PAVER_NLU__MODE", "rules")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting paver serve")?;
    let stderr = child.stderr.take().context("the child's stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("paver listening on ") {
                return Ok(url.trim().to_owned());
            }
            eprintln!("replica {n}: {line}");
        }
        bail!("replica {n} exited before listening")
    })
    .await
    .context("waiting for paver serve to listen")??;
    // Keep reading its log so the pipe never fills.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("replica {n}: {line}");
        }
    });
    Ok(Replica { child, url })
}

fn signed(body: &str) -> (String, String) {
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = paver::slack::verify::signature(SECRET.as_bytes(), &ts, body.as_bytes());
    (ts, sig)
}

fn mention(run: &str, i: usize, b: &EventsBench) -> (String, String) {
    let (text, user) = (&b.text, &b.user);
    let ts = format!("{run}.{i:06}");
    let channel = format!("C0BENCH{:04}", i % b.channels.max(1));
    let body = json!({
        "token": "unused", "team_id": TEAM, "api_app_id": "A0BENCH",
        "type": "event_callback", "event_id": format!("Ev{run}{i}"), "event_time": 0,
        "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": true}],
        "event": {"type": "app_mention", "user": user, "text": format!("<@{BOT}> {text}"),
            "ts": ts, "event_ts": ts, "channel": channel, "team": TEAM},
    });
    (body.to_string(), ts)
}

#[derive(Default)]
struct Sent {
    /// (event ts, when sent, acknowledgement latency, HTTP status or 0)
    events: Vec<(String, Instant, Duration, u16)>,
}

async fn send_one(http: &reqwest::Client, url: &str, body: String) -> (Duration, u16) {
    let (ts, sig) = signed(&body);
    timed(
        http.post(format!("{url}/slack/events"))
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig),
        body,
    )
    .await
}

/// Sends a signed JSON request: how long its answer took, and its HTTP
/// status (0 when none came).
pub(super) async fn timed(request: reqwest::RequestBuilder, body: String) -> (Duration, u16) {
    let t0 = Instant::now();
    let status = request
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    (t0.elapsed(), status)
}

pub(super) fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// "p50 …, p90 …, p99 …" of latencies sorted ascending.
pub(super) fn spread(sorted: &[Duration]) -> String {
    format!(
        "p50 {}, p90 {}, p99 {}",
        ms(quantile(sorted, 0.5)),
        ms(quantile(sorted, 0.9)),
        ms(quantile(sorted, 0.99))
    )
}

pub(super) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub fn run(b: EventsBench) -> anyhow::Result<ExitCode> {
    if b.replicas == 0 {
        bail!("--replicas: at least 1");
    }
    shared_database(b.replicas, b.database.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(bench(b))
}

async fn bench(b: EventsBench) -> anyhow::Result<ExitCode> {
    let run = chrono::Utc::now().timestamp().to_string();
    let (scratch, database) = scratch("events", &run, b.database.as_deref())?;

    let seen = Arc::new(Seen::default());
    let slack_api = start_fake_slack(seen.clone()).await?;

    // Launch: the first replica alone, timed to its first answer.
    let t_launch = Instant::now();
    let mut replicas = vec![launch(&scratch, &slack_api, &database, 0, &[]).await?];
    let listening = t_launch.elapsed();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(b.concurrency.max(16))
        .build()?;
    let (body, first_ts) = mention(&run, 999_999, &b);
    let (_, status) = send_one(&http, &replicas[0].url, body).await;
    if status != 200 {
        bail!("the first event was answered {status}, not 200");
    }
    let first = loop {
        if let Some(t) = seen.cards.lock().expect("not poisoned").get(&first_ts) {
            break t.duration_since(t_launch);
        }
        if t_launch.elapsed() > Duration::from_secs(60) {
            bail!("no card for the first event within a minute: is `{}` a request the catalog's user {} may make?", b.text, b.user);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    for n in 1..b.replicas {
        replicas.push(launch(&scratch, &slack_api, &database, n, &[]).await?);
    }
    // Idle memory: after the start's work has settled.
    // (`paver serve` gives back its start-up code 5 s after listening.)
    tokio::time::sleep(Duration::from_secs(7)).await;
    let idle_rss: Vec<Option<u64>> = replicas.iter().map(Replica::rss_kib).collect();

    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let sent = Arc::new(Mutex::new(Sent::default()));
    let cpu_before: Vec<Option<Duration>> = replicas.iter().map(Replica::cpu_time).collect();
    let bench_cpu_before = cpu_time("self");
    let t_start = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(b.concurrency.max(1)));
    let mut tasks = Vec::new();
    let total = b
        .burst
        .unwrap_or_else(|| (b.rate * b.seconds).round() as usize);
    let mut tick = b.burst.is_none().then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / b.rate));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    for i in 0..total {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        // A burst keeps `concurrency` in flight; a rate sends on time
        // whatever is in flight (an open loop: a slow answer does not
        // slow the sender, as with Slack).
        let permit = match tick {
            None => Some(slots.clone().acquire_owned().await?),
            Some(_) => None,
        };
        let (body, ts) = mention(&run, i, &b);
        let (http, url, sent) = (http.clone(), urls[i % urls.len()].clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            let (lat, status) = send_one(&http, &url, body).await;
            sent.lock()
                .expect("not poisoned")
                .events
                .push((ts, at, lat, status));
            drop(permit);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let sending = t_start.elapsed();
    // The last cards.
    let deadline = Instant::now() + DRAIN;
    let acked: Vec<String> = sent
        .lock()
        .expect("not poisoned")
        .events
        .iter()
        .filter(|e| e.3 == 200)
        .map(|e| e.0.clone())
        .collect();
    loop {
        let n = {
            let cards = seen.cards.lock().expect("not poisoned");
            acked.iter().filter(|ts| cards.contains_key(*ts)).count()
        };
        if n == acked.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let cpu_used = |before: Option<Duration>, after: Option<Duration>| -> Option<Duration> {
        Some(after?.saturating_sub(before?))
    };
    let replicas_cpu: Option<Duration> = replicas
        .iter()
        .zip(&cpu_before)
        .map(|(r, before)| cpu_used(*before, r.cpu_time()))
        .sum();
    let bench_cpu = cpu_used(bench_cpu_before, cpu_time("self"));
    let peak_rss: Vec<Option<u64>> = replicas.iter().map(Replica::peak_rss_kib).collect();
    let run_time = t_start.elapsed();
    // Copied out: the replicas are stopped (awaited) after the report.
    let sent = std::mem::take(&mut *sent.lock().expect("not poisoned"));
    let cards = seen.cards.lock().expect("not poisoned").clone();
    let mut acks: Vec<Duration> = sent.events.iter().map(|e| e.2).collect();
    acks.sort();
    let refused = sent.events.iter().filter(|e| e.3 != 200).count();
    let mut e2e: Vec<Duration> = sent
        .events
        .iter()
        .filter_map(|(ts, at, _, _)| cards.get(ts).map(|c| c.duration_since(*at)))
        .collect();
    e2e.sort();
    let last_card = sent
        .events
        .iter()
        .filter_map(|(ts, _, _, _)| cards.get(ts))
        .max()
        .copied();
    let carded = e2e.len();
    let window = last_card
        .map(|l| l.duration_since(t_start))
        .unwrap_or(sending);

    let how = match b.burst {
        Some(n) => format!("a burst of {n}, {} in flight", b.concurrency),
        None => format!("{}/s for {}s", b.rate, b.seconds),
    };
    println!(
        "paver bench events: {how}, {} replica(s) on {}",
        b.replicas,
        paver::util::redact_url(&database)
    );
    println!("  request: {:?} as {}", b.text, b.user);
    println!(
        "  launch: listening after {}, first card after {}",
        ms(listening),
        ms(first)
    );
    for (n, (idle, peak)) in idle_rss.iter().zip(&peak_rss).enumerate() {
        if let (Some(idle), Some(peak)) = (idle, peak) {
            println!(
                "  RSS of replica {n}: {:.1} MiB idle before the run, {:.1} MiB at most",
                *idle as f64 / 1024.0,
                *peak as f64 / 1024.0
            );
        }
    }
    println!(
        "  sent {} in {:.2}s ({:.0}/s); acknowledged 200: {}, refused or failed: {refused}",
        sent.events.len(),
        sending.as_secs_f64(),
        sent.events.len() as f64 / sending.as_secs_f64(),
        sent.events.len() - refused
    );
    println!(
        "  acknowledgement: {}, max {}",
        spread(&acks),
        ms(acks.last().copied().unwrap_or_default())
    );
    println!(
        "  event → card: {}; {carded} cards in {:.2}s = {:.0} requests/s end to end",
        spread(&e2e),
        window.as_secs_f64(),
        carded as f64 / window.as_secs_f64()
    );
    let dropped = acked
        .len()
        .saturating_sub(acked.iter().filter(|ts| cards.contains_key(*ts)).count());
    println!(
        "  dropped (acknowledged, no card): {dropped}; Slack calls: {} posts, {} updates, {} other",
        seen.posts.lock().expect("not poisoned"),
        seen.updates.lock().expect("not poisoned"),
        seen.other.lock().expect("not poisoned")
    );
    if let (Some(r), Some(own)) = (replicas_cpu, bench_cpu) {
        println!(
            "  CPU over {:.2}s: replicas {:.2}s, this bench (client and fake Slack) {:.2}s",
            run_time.as_secs_f64(),
            r.as_secs_f64(),
            own.as_secs_f64()
        );
    }
    stop(replicas).await;
    if b.database.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(if dropped == 0 && refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Several replicas share one database, and only PostgreSQL can be shared.
pub(super) fn shared_database(replicas: usize, database: Option<&str>) -> anyhow::Result<()> {
    if replicas > 1 && !database.is_some_and(|d| d.starts_with("postgres")) {
        bail!("several replicas share one PostgreSQL database: give --database postgres://…");
    }
    Ok(())
}

/// A scratch directory for one run (the replicas' GitOps repositories),
/// and their database: `database`, or a SQLite file in the directory.
pub(super) fn scratch(
    bench: &str,
    run: &str,
    database: Option<&str>,
) -> anyhow::Result<(PathBuf, String)> {
    let dir =
        std::env::temp_dir().join(format!("paver-bench-{bench}-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the scratch directory")?;
    let database = database
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}", dir.join("paver.db").display()));
    Ok((dir, database))
}

/// Stops the replicas: SIGTERM, as an orchestrator stops one; killed if it
/// lingers.
pub(super) async fn stop(replicas: Vec<Replica>) {
    for mut r in replicas {
        if let Some(pid) = r.child.id() {
            #[cfg(unix)]
            // SAFETY: a plain signal to our own child process.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(30), r.child.wait())
            .await
            .is_err()
        {
            let _ = r.child.kill().await;
        }
    }
}
