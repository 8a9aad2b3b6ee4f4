//! What the environments and resources Paver created cost a month now, from
//! the estimates recorded with the requests that created them.
//!
//! Only requests that succeeded count. Per service and environment, each
//! item (the environment itself, each resource type) counts once, at the
//! price of the latest request that created it — asking twice for staging
//! with Postgres does not cost twice; a destroy that succeeded clears what
//! was there before it; a preview environment stops counting when it
//! expires. Items the price table had no price for count nothing.

use std::collections::BTreeMap;

use sqlx::FromRow;

use super::{now_ms, RequestStore, StorageError};
use crate::domain::{Cents, CostItem, MonthlyCost, TeamName};

/// The monthly cost of what Paver created, by service.
pub type CostByService = BTreeMap<String, Cents>;

#[derive(FromRow)]
struct CostRow {
    service: Option<String>,
    environment: Option<String>,
    action_kind: String,
    cost_json: Option<String>,
    expires_at: Option<i64>,
}

impl RequestStore<'_> {
    /// The estimated monthly cost, now, of every service's environments and
    /// resources that Paver created (see the module).
    pub async fn cost_by_service(&self) -> Result<CostByService, StorageError> {
        let rows: Vec<CostRow> = sqlx::query_as(
            "SELECT service, environment, action_kind, cost_json, expires_at FROM requests \
             WHERE state = 'succeeded' \
             AND action_kind IN ('create_environment', 'add_resource', 'destroy_environment') \
             ORDER BY updated_at, id",
        )
        .fetch_all(&self.db.pool)
        .await?;
        let now_secs = now_ms() / 1000;
        // (service, environment) → item → its latest price.
        let mut live: BTreeMap<(String, String), BTreeMap<CostItem, Cents>> = BTreeMap::new();
        for row in rows {
            let (Some(service), Some(environment)) = (row.service, row.environment) else {
                continue;
            };
            let key = (service, environment);
            if row.action_kind == "destroy_environment" {
                live.remove(&key);
                continue;
            }
            // A preview past its expiry is gone (the driver wrote the expiry
            // into its desired state, in seconds).
            if row.expires_at.is_some_and(|t| t <= now_secs) {
                live.remove(&key);
                continue;
            }
            let Some(json) = row.cost_json else { continue };
            let cost: MonthlyCost = serde_json::from_str(&json).map_err(|e| {
                StorageError::Corrupt(format!("request cost of {}/{}: {e}", key.0, key.1))
            })?;
            let items = live.entry(key).or_default();
            for line in cost.lines {
                if let Some(c) = line.cents {
                    items.insert(line.item, c);
                }
            }
        }
        let mut out = CostByService::new();
        for ((service, _), items) in live {
            let sum: Cents = items.into_values().sum();
            let total = out.entry(service).or_default();
            *total = total.saturating_add(sum);
        }
        Ok(out)
    }

    /// [`Self::cost_by_service`] summed by the team that owns each service,
    /// as `owner` says (the catalog's `spec.owner`); services without an
    /// owner are left out. Every team with a cost is a key.
    pub async fn cost_by_team(
        &self,
        owner: &(dyn Fn(&str) -> Option<TeamName> + Sync),
    ) -> Result<BTreeMap<TeamName, Cents>, StorageError> {
        let mut out: BTreeMap<TeamName, Cents> = BTreeMap::new();
        for (service, cents) in self.cost_by_service().await? {
            if let Some(team) = owner(&service) {
                let total = out.entry(team).or_default();
                *total = total.saturating_add(cents);
            }
        }
        Ok(out)
    }
}
