//! `GET /healthz` (the process and its database) and `GET /readyz` (ready
//! for traffic: the database, a loaded catalog, and every chat connection
//! this replica started), as a load balancer or Kubernetes probes them.

mod support;

use paver::config::Config;
use serde_json::Value;
use support::paver::TestPaver;

async fn get(base: &str, path: &str) -> (u16, String) {
    let resp = reqwest::get(format!("{base}{path}")).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn readyz_waits_for_every_connection_this_replica_started() {
    let paver = TestPaver::start().await;
    let app = paver.app();
    // As `paver serve` registers Discord's gateway when it starts it.
    let gateway = app.readiness.component("discord_gateway");
    let router = paver::server::router(&app, &Config::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    assert_eq!(get(&base, "/healthz").await, (200, "ok\n".into()));

    let (status, body) = get(&base, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["checks"]["database"], true);
    assert_eq!(v["checks"]["catalog"], true);
    assert_eq!(v["checks"]["discord_gateway"], false);

    gateway.up();
    let (status, body) = get(&base, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ready"], true);

    // The connection drops: not ready, still alive.
    gateway.down();
    assert_eq!(get(&base, "/readyz").await.0, 503);
    assert_eq!(get(&base, "/healthz").await.0, 200);
}
