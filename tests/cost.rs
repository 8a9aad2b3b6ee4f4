//! Issue 18 (cost), driven as a user would: the estimated monthly cost on
//! the card of a new environment or resource, recorded with the request,
//! summed per team over what was actually created, and the policy limit
//! "monthly cost per team" that turns a request into one that needs an
//! approval. On SQLite, and on PostgreSQL when PAVER_TEST_DATABASE_URL is
//! set.

mod support;

use std::collections::BTreeMap;

use paver::domain::{Cents, Price, RequestState, TeamName};
use paver::engine::EngineSettings;
use paver::policy::PolicyConfig;
use support::paver::TestPaver;

fn team(name: &str) -> TeamName {
    TeamName::parse(name).unwrap()
}

fn field(h: &TestPaver, id: &str, name: &str) -> Option<String> {
    h.latest_card(id)
        .fields
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// Presses the card's confirming button (Create, Add, Destroy, …).
async fn confirm(h: &TestPaver, who: &str, id: &str) {
    let label = h.latest_card(id).buttons[0].label.clone();
    h.press(who, id, &label).await;
}

/// What each team's created environments and resources cost a month now,
/// owners from the harness's catalog.
async fn by_team(h: &TestPaver) -> BTreeMap<TeamName, Cents> {
    let catalog = h.catalog.current();
    let owner = |s: &str| catalog.component(s).and_then(|c| c.owner.clone());
    h.db().requests().cost_by_team(&owner).await.unwrap()
}

/// The platform report of the last day with its cost section.
async fn report_with_cost(h: &TestPaver, team: Option<&str>) -> paver::report::Report {
    let catalog = h.catalog.current();
    let now = paver::storage::now_ms();
    let scope = paver::report::Scope {
        since: now - 86_400_000,
        until: now + 1,
        team: team.map(str::to_owned),
    };
    let built = paver::report::build(h.db(), &catalog, &scope)
        .await
        .unwrap();
    let prices = paver::domain::PriceTable::default();
    paver::report::with_cost(built, h.db(), &catalog, &prices)
        .await
        .unwrap()
}

fn cents(units: i64) -> Cents {
    Cents::new(units * 100).unwrap()
}

#[tokio::test]
async fn the_card_shows_the_estimate_and_the_team_pays_for_what_was_created() {
    let h = TestPaver::start().await;
    let id = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    // The default price table: staging $150, PostgreSQL $120.
    assert_eq!(
        field(&h, &id, "Estimated cost").as_deref(),
        Some("~$270/month (staging environment $150 + PostgreSQL $120)")
    );
    // The size on the card is the size the driver receives.
    let size = field(&h, &id, "Resource: postgres").unwrap();
    assert_eq!(size, "PostgreSQL 16 · 2 vCPU · 4Gi memory · daily backups");
    let req = h.request(&id).await;
    assert_eq!(req.cost.as_ref().unwrap().known(), cents(270));
    // Proposed is not created: nobody pays for it yet.
    assert!(by_team(&h).await.is_empty());

    confirm(&h, "alice", &id).await;
    assert_eq!(h.request(&id).await.state, RequestState::Succeeded);
    // The card keeps the line once done.
    assert!(field(&h, &id, "Estimated cost").is_some());
    assert_eq!(by_team(&h).await[&team("team-commerce")], cents(270));

    // Adding a resource costs the resource.
    let add = h
        .propose("alice", "add redis to order-service in staging")
        .await;
    assert_eq!(
        field(&h, &add, "Estimated cost").as_deref(),
        Some("~$35/month")
    );
    confirm(&h, "alice", &add).await;
    assert_eq!(by_team(&h).await[&team("team-commerce")], cents(305));

    // Asking for the same environment again does not pay for it twice.
    let again = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    confirm(&h, "alice", &again).await;
    assert_eq!(h.request(&again).await.state, RequestState::Succeeded);
    assert_eq!(by_team(&h).await[&team("team-commerce")], cents(305));

    // The platform report sums it by team, in the price table's currency.
    let report = report_with_cost(&h, None).await;
    let cost = report.cost.as_ref().unwrap();
    assert_eq!(cost.currency, "USD");
    assert_eq!(cost.monthly_total_cents, 30_500);
    assert_eq!(
        cost.teams
            .iter()
            .map(|t| (t.team.as_str(), t.monthly_cents, t.monthly.as_str()))
            .collect::<Vec<_>>(),
        [("team-commerce", 30_500, "$305")]
    );
    let md = paver::report::render::markdown(&report);
    assert!(
        md.contains("## Cost") && md.contains("| team-commerce | $305 |"),
        "{md}"
    );
    let csv = paver::report::render::csv(&report);
    assert!(
        csv.contains("cost,team-commerce,,,,monthly_cost_cents_USD,30500,,"),
        "{csv}"
    );
    // Another team's report shows nothing of it.
    let other = report_with_cost(&h, Some("team-payments")).await;
    assert!(other.cost.unwrap().teams.is_empty());

    // A change that creates nothing says nothing of cost.
    let deploy = h
        .propose("alice", "deploy order-service 1.2.0 to staging")
        .await;
    assert_eq!(field(&h, &deploy, "Estimated cost"), None);
    assert_eq!(h.request(&deploy).await.cost, None);

    // Torn down, it costs nothing any more (destroying staging needs dave).
    let destroy = h
        .propose("alice", "destroy staging for order-service")
        .await;
    confirm(&h, "alice", &destroy).await;
    h.press("dave", &destroy, "Approve").await;
    assert_eq!(h.request(&destroy).await.state, RequestState::Succeeded);
    assert_eq!(by_team(&h).await.get(&team("team-commerce")), None);
}

#[tokio::test]
async fn a_request_over_the_team_limit_needs_approval_bound_to_its_action() {
    let policy = PolicyConfig {
        max_monthly_cost_per_team: Some(Price(cents(400))),
        ..PolicyConfig::default()
    };
    let h = TestPaver::builder()
        .policy(policy)
        .settings(EngineSettings::default())
        .start()
        .await;

    // Proposed while team-commerce spends nothing: $160 is under $400.
    let id = h
        .propose("alice", "create dev for checkout-api with Postgres")
        .await;
    assert_eq!(
        field(&h, &id, "Estimated cost").as_deref(),
        Some("~$160/month (dev environment $40 + PostgreSQL $120)")
    );
    assert!(!h.latest_card(&id).context.unwrap().contains("limit"));

    // Meanwhile $270 of $400: runs on the requester's confirmation.
    let first = h
        .propose("alice", "create staging for order-service with Postgres")
        .await;
    confirm(&h, "alice", &first).await;
    assert_eq!(h.request(&first).await.state, RequestState::Succeeded);
    assert_eq!(h.driver.calls(), 1);

    // Confirmed now, the $160 takes team-commerce to $430: policy decides
    // on today's total, and the approval card says why.
    confirm(&h, "alice", &id).await;
    let req = h.request(&id).await;
    assert_eq!(req.state, RequestState::AwaitingApproval);
    assert_eq!(h.driver.calls(), 1, "nothing runs before the approval");
    let why = "team-commerce would spend ~$430/month, over the limit of $400/month (max_monthly_cost_per_team): ~$270 now + ~$160 for this request";
    let card = h.latest_card(&id);
    assert!(card.fields.iter().any(|(k, _)| k == "Estimated cost"));
    let context = card.context.unwrap();
    assert!(context.contains(why), "{context}");
    let events = h.db().requests().events(&id).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.transition == "need_approval" && e.detail == "max_monthly_cost_per_team"));

    // The requester cannot approve their own; dave (team-commerce) can.
    h.press("alice", &id, "Approve").await;
    assert_eq!(h.request(&id).await.state, RequestState::AwaitingApproval);
    h.press("dave", &id, "Approve").await;
    let req = h.request(&id).await;
    assert_eq!(req.state, RequestState::Succeeded);
    let approvals = h.db().requests().approvals(&id).await.unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].action_hash, req.action_hash);
    assert_eq!(by_team(&h).await[&team("team-commerce")], cents(430));

    // Already over: the next proposal's card says so before anyone presses.
    let more = h.propose("alice", "add redis to cart-service in dev").await;
    let context = h.latest_card(&more).context.unwrap();
    assert!(
        context.contains("team-commerce would spend ~$465/month, over the limit of $400/month (max_monthly_cost_per_team): ~$430 now + ~$35 for this request"),
        "{context}"
    );
    confirm(&h, "alice", &more).await;
    assert_eq!(h.request(&more).await.state, RequestState::AwaitingApproval);

    // Another team's request is not held back by team-commerce's cost.
    let other = h
        .propose("bob", "create staging for payment-service with Postgres")
        .await;
    confirm(&h, "bob", &other).await;
    assert_eq!(h.request(&other).await.state, RequestState::Succeeded);
    assert_eq!(by_team(&h).await[&team("team-payments")], cents(270));
}

#[tokio::test]
async fn a_preview_costs_until_it_expires() {
    let h = TestPaver::start().await;
    let id = h
        .propose("alice", "create preview for order-service with redis")
        .await;
    assert_eq!(
        field(&h, &id, "Estimated cost").as_deref(),
        Some("~$60/month (preview environment $25 + Redis $35)")
    );
    confirm(&h, "alice", &id).await;
    let req = h.request(&id).await;
    assert_eq!(req.state, RequestState::Succeeded);
    assert!(req.expires_at.is_some(), "a preview has an expiry");
    assert_eq!(by_team(&h).await[&team("team-commerce")], cents(60));
    h.clock().environment_expired(&id).await;
    assert!(by_team(&h).await.is_empty());
}
