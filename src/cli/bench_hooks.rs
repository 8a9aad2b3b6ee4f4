//! `paver bench hooks`: a burst of signed deploy hooks at real `paver
//! serve` processes, the way a busy CD system sends them — every service of
//! the catalog deploying at once, each service's events in order (staging
//! and production, in progress → deployed → healthy, version after
//! version). It reports how fast the hooks are acknowledged, when the last
//! notice reached the (recording, fake) Slack, and how few messages the
//! burst made: one post per service, environment and channel, the rest
//! edits of it, coalesced while they wait.
//!
//! The events go to `/hooks/generic` (the signed orchestrator format), the
//! notices to each service's team channel and, for production, to a
//! deploys channel; `--pace-ms` sets the channel pace (Slack's is about
//! one message a second per channel; 0 measures the work alone).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;

use super::bench::{launch, ms, scratch, shared_database, spread, start_fake_slack, stop, Seen};
use paver::catalog::Catalog;
use paver::config::Config;

const SECRET: &str = "bench-hook-secret";

/// `paver bench hooks`: how many, how fast, where.
#[derive(Debug, Clone, clap::Args)]
pub struct HooksBench {
    /// Deploy events in the burst, spread over the catalog's services.
    #[arg(long, default_value_t = 1000)]
    pub events: usize,
    /// Hooks in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// `paver serve` processes, sent to in turn (several need --database postgres://…).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// The replicas' database (default: a scratch SQLite file).
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// The least time between two messages to one channel, in ms.
    #[arg(long, default_value_t = 0)]
    pub pace_ms: u64,
}

/// One deploy event of the burst: `k`-th of its service.
fn event(run: &str, service: &str, k: usize) -> String {
    let environment = ["staging", "production"][k % 2];
    let status = ["in_progress", "deployed", "healthy"][(k / 2) % 3];
    json!({
        "id": format!("{run}-{service}-{k}"),
        "service": service,
        "environment": environment,
        "status": status,
        "version": format!("1.0.{}", k / 6),
    })
    .to_string()
}

async fn send(http: &reqwest::Client, url: &str, body: String) -> (Duration, u16) {
    let ts = chrono::Utc::now().timestamp();
    let sig =
        paver::drivers::http::sign_callback(SECRET, ts, "POST", "/hooks/generic", body.as_bytes());
    super::bench::timed(
        http.post(format!("{url}/hooks/generic"))
            .header("X-Paver-Timestamp", ts.to_string())
            .header("X-Paver-Signature", sig),
        body,
    )
    .await
}

/// The services the burst deploys: the configured catalog's.
fn services(config: &Config) -> anyhow::Result<Vec<String>> {
    let Some(file) = config.catalog.file.as_deref() else {
        bail!("the hooks bench deploys the catalog's services: set catalog.file");
    };
    let catalog = Catalog::from_yaml_file(file)
        .with_context(|| format!("reading the catalog {}", file.display()))?;
    let names: Vec<String> = catalog.components().map(|c| c.name.to_string()).collect();
    if names.is_empty() {
        bail!("the catalog {} has no components", file.display());
    }
    Ok(names)
}

pub fn run(config: &Config, b: HooksBench) -> anyhow::Result<ExitCode> {
    if b.replicas == 0 || b.events == 0 {
        bail!("--replicas and --events: at least 1");
    }
    shared_database(b.replicas, b.database.as_deref())?;
    let services = services(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(bench(b, services))
}

async fn bench(b: HooksBench, services: Vec<String>) -> anyhow::Result<ExitCode> {
    let run = chrono::Utc::now().timestamp().to_string();
    let (scratch, database) = scratch("hooks", &run, b.database.as_deref())?;
    let seen = Arc::new(Seen::default());
    let slack_api = start_fake_slack(seen.clone()).await?;
    let pace = b.pace_ms.to_string();
    let env = [
        ("PAVER_HOOKS__GENERIC_SECRET", SECRET),
        // Teams without a channel of their own are told here, and every
        // production deploy in the deploys channel.
        ("PAVER_NOTIFY__DEFAULT_CHANNELS", "[\"slack:C0PLATFORM\"]"),
        ("PAVER_NOTIFY__PRODUCTION_CHANNELS", "[\"slack:C0DEPLOYS\"]"),
        ("PAVER_SLACK__MIN_INTERVAL_MS", pace.as_str()),
    ];
    let mut replicas = Vec::new();
    for n in 0..b.replicas {
        replicas.push(launch(&scratch, &slack_api, &database, n, &env).await?);
    }
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let result = burst(&b, &run, &services, &urls, &seen).await;
    stop(replicas).await;
    if b.database.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let refused = result?;
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Sends the burst and reports; how many hooks were not accepted.
async fn burst(
    b: &HooksBench,
    run: &str,
    services: &[String],
    urls: &[String],
    seen: &Seen,
) -> anyhow::Result<usize> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(b.concurrency.max(16))
        .build()?;
    let per_service = b.events.div_ceil(services.len());
    // Each service's events in order, on its own lane; the lanes at once,
    // `concurrency` hooks in flight in all.
    let slots = Arc::new(tokio::sync::Semaphore::new(b.concurrency.max(1)));
    let acks = Arc::new(Mutex::new(Vec::<(Duration, u16)>::new()));
    let t_start = Instant::now();
    let mut lanes = tokio::task::JoinSet::new();
    let mut sent = 0;
    for (i, service) in services.iter().enumerate() {
        let n = per_service.min(b.events - sent);
        sent += n;
        let (http, slots, acks) = (http.clone(), slots.clone(), acks.clone());
        let (service, run, urls) = (service.clone(), run.to_owned(), urls.to_vec());
        lanes.spawn(async move {
            for k in 0..n {
                let Ok(_slot) = slots.acquire().await else {
                    return;
                };
                let url = &urls[(i + k) % urls.len()];
                let answer = send(&http, url, event(&run, &service, k)).await;
                acks.lock().expect("not poisoned").push(answer);
            }
        });
    }
    while lanes.join_next().await.is_some() {}
    let accepting = t_start.elapsed();
    // Delivered: the fake has heard nothing for two seconds (or a minute
    // and a half has passed since the last hook).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let quiet = seen
            .last_call
            .lock()
            .expect("not poisoned")
            .is_some_and(|t| t.elapsed() > Duration::from_secs(2));
        if quiet || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = seen
        .last_call
        .lock()
        .expect("not poisoned")
        .map(|t| t.duration_since(t_start))
        .unwrap_or_default();
    let acks = std::mem::take(&mut *acks.lock().expect("not poisoned"));
    let refused = acks.iter().filter(|a| a.1 != 202).count();
    let mut lat: Vec<Duration> = acks.iter().map(|a| a.0).collect();
    lat.sort();
    let posts = *seen.posts.lock().expect("not poisoned");
    let updates = *seen.updates.lock().expect("not poisoned");
    println!(
        "paver bench hooks: {} deploy events for {} services, {} in flight, {} replica(s), pace {} ms",
        acks.len(),
        services.len(),
        b.concurrency,
        urls.len(),
        b.pace_ms
    );
    println!(
        "  accepted (202) {} of {} in {:.2}s ({:.0}/s); refused or failed: {refused}",
        acks.len() - refused,
        acks.len(),
        accepting.as_secs_f64(),
        acks.len() as f64 / accepting.as_secs_f64()
    );
    println!(
        "  acknowledgement: {}, max {}",
        spread(&lat),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!(
        "  last message after {:.2}s; Slack calls: {posts} posts, {updates} edits = {:.0} messages per 1,000 events",
        last.as_secs_f64(),
        (posts + updates) as f64 * 1000.0 / acks.len().max(1) as f64
    );
    Ok(refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_services_events_go_through_both_environments_in_order() {
        let e: Vec<serde_json::Value> = (0..6)
            .map(|k| serde_json::from_str(&event("1", "order-service", k)).unwrap())
            .collect();
        let seen: Vec<(&str, &str)> = e
            .iter()
            .map(|v| {
                (
                    v["environment"].as_str().unwrap(),
                    v["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("staging", "in_progress"),
                ("production", "in_progress"),
                ("staging", "deployed"),
                ("production", "deployed"),
                ("staging", "healthy"),
                ("production", "healthy"),
            ]
        );
        assert_ne!(e[0]["id"], e[1]["id"]);
    }

    #[test]
    fn the_shipped_catalog_has_services_to_deploy() {
        let config = Config::load(Some(Path::new("config/paver.toml"))).unwrap();
        assert!(services(&config).unwrap().len() >= 5);
    }
}
