//! The Backstage catalog source against a fake Backstage on loopback that
//! speaks `GET /api/catalog/entities/by-query` with cursor paging.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde_json::{json, Value};

use paver::catalog::{BackstageClient, Catalog, CatalogSource, SharedCatalog};

#[derive(Clone, Default)]
struct Fake {
    calls: Arc<AtomicUsize>,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

fn entity(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "backstage.io/v1alpha1", "kind": kind,
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

async fn by_query(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, StatusCode> {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    if fake.fail.load(Ordering::SeqCst) {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer t0ken") {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let cursor = q
        .iter()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.as_str());
    let filters: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| v.as_str())
        .collect();
    match cursor {
        None => {
            // The first page carries the kind filter; the cursor carries it after.
            assert!(filters.contains(&"kind=component") && filters.contains(&"kind=group"));
            Ok(Json(json!({
                "items": [
                    entity("Group", "team-a", json!({"type": "team", "children": []})),
                    {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                     "metadata": {"name": "api-one"},
                     "spec": {"type": "service", "lifecycle": "production"},
                     "relations": [{"type": "ownedBy", "targetRef": "group:default/team-a"}]},
                ],
                "totalItems": 4,
                "pageInfo": {"nextCursor": "page2"}
            })))
        }
        Some("page2") => Ok(Json(json!({
            "items": [
                entity("Component", "api-two", json!({"owner": "team-a"})),
                {"kind": "Component", "metadata": {"name": "broken"}},
            ],
            "totalItems": 4,
            "pageInfo": {}
        }))),
        Some(_) => Err(StatusCode::BAD_REQUEST),
    }
}

async fn serve(fake: Fake) -> url::Url {
    let app = Router::new()
        .route("/backstage/api/catalog/entities/by-query", get(by_query))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // A base URL with a path: Backstage often lives under one.
    url::Url::parse(&format!("http://{addr}/backstage/")).unwrap()
}

fn client(base: url::Url, token: &str) -> BackstageClient {
    BackstageClient::new(
        base,
        Some(SecretString::from(token.to_owned())),
        Duration::from_secs(5),
    )
}

#[tokio::test]
async fn pages_through_the_catalog_and_skips_malformed_entities() {
    let fake = Fake::default();
    let base = serve(fake.clone()).await;
    let source = CatalogSource::Backstage(client(base, "t0ken"));
    let catalog = tokio::time::timeout(Duration::from_secs(10), source.load())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    let names: Vec<&str> = catalog.components().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["api-one", "api-two"]);
    assert_eq!(
        catalog
            .component("api-one")
            .unwrap()
            .owner
            .as_ref()
            .unwrap()
            .as_str(),
        "team-a"
    );
    let warnings = catalog.warnings().join("\n");
    assert!(warnings.contains("Component broken"), "{warnings}");
}

#[tokio::test]
async fn a_wrong_token_is_an_error_not_an_empty_catalog() {
    let base = serve(Fake::default()).await;
    let err = client(base, "wrong").fetch_all().await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn refresh_swaps_in_new_catalogs_and_keeps_the_last_good_one() {
    let fake = Fake::default();
    let base = serve(fake.clone()).await;
    let shared = SharedCatalog::new(Catalog::default());
    let task = shared.spawn_refresh(
        CatalogSource::Backstage(client(base, "t0ken")),
        Duration::from_millis(50),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while shared.current().components().count() != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "catalog never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.fail.store(true, Ordering::SeqCst);
    let calls = fake.calls.load(Ordering::SeqCst);
    while fake.calls.load(Ordering::SeqCst) < calls + 2 {
        assert!(tokio::time::Instant::now() < deadline, "refresh stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(shared.current().components().count(), 2);
    task.abort();
}
