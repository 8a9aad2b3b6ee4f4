//! The four DORA metrics from deploy events, as pure functions (README:
//! "Platform report" says the same in prose).
//!
//! One service's production events, oldest first, are grouped into
//! deployments ([`deployments`]); a deployment failed when any of its
//! events is `failed` or `degraded`, or when a Paver rollback of that
//! service followed it. [`Dora::of`] reduces any set of deployments (a
//! service's, a team's, everyone's) to the four figures.

use serde::Serialize;

use super::figures::{Percentiles, Rate, WEEK_MS};
use crate::domain::DeployStatus;

/// One stored deploy event of a service in production.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: i64,
    pub status: DeployStatus,
    pub version: Option<String>,
    pub commit: Option<String>,
    /// When the deployed commit was made, where the sender said.
    pub commit_at: Option<i64>,
}

/// Whether two events name the same change: by version when both name
/// one, else by commit when both carry one; `None` when that cannot be
/// told (one source names a version, another only the commit).
fn same_change(
    (v1, c1): (Option<&str>, Option<&str>),
    (v2, c2): (Option<&str>, Option<&str>),
) -> Option<bool> {
    match ((v1, v2), (c1, c2)) {
        ((Some(a), Some(b)), _) => Some(a == b),
        (_, (Some(a), Some(b))) => Some(a == b),
        _ => None,
    }
}

/// A Paver rollback request of the service in production that succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollback {
    pub created_at: i64,
    pub succeeded_at: i64,
}

/// One deployment: events of one change, from its first event to the next
/// deployment's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub started_at: i64,
    /// First `deployed` or `healthy` event.
    pub deployed_at: Option<i64>,
    /// First `failed` or `degraded` event, or the creation of the Paver
    /// rollback that undid it.
    pub failed_at: Option<i64>,
    /// When the service was healthy again after the failure.
    pub restored_at: Option<i64>,
    /// The earliest commit time its events carried.
    pub commit_at: Option<i64>,
    pub rolled_back: bool,
}

impl Deployment {
    /// Reached production, successfully or not (cancelled and unfinished
    /// deployments do not count).
    pub fn counts(&self) -> bool {
        self.deployed_at.is_some() || self.failed_at.is_some()
    }

    pub fn failed(&self) -> bool {
        self.failed_at.is_some()
    }

    /// Lead time for changes: commit to production, for a deployment that
    /// succeeded and whose events carried the commit's time.
    pub fn lead_time(&self) -> Option<i64> {
        if self.failed() {
            return None;
        }
        let (c, d) = (self.commit_at?, self.deployed_at?);
        (d >= c).then_some(d - c)
    }
}

/// Groups one service's production events (oldest first) into deployments
/// and marks the ones its rollbacks undid.
///
/// A new deployment starts at the first event; at an event naming another
/// version than the current deployment (or, where either names none,
/// another commit); and at a `queued`,
/// `in_progress` or `deployed` event once the current deployment has
/// reached a final status. Any other event (`healthy`, `degraded`,
/// `failed`, `cancelled`) is news of the current deployment.
pub fn deployments(events: &[Event], rollbacks: &[Rollback]) -> Vec<Deployment> {
    struct Open {
        d: Deployment,
        version: Option<String>,
        commit: Option<String>,
        finished: bool,
    }
    let mut out: Vec<Deployment> = Vec::new();
    // For each deployment, its events' indices (for restore times).
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut cur: Option<Open> = None;
    for (i, e) in events.iter().enumerate() {
        let starts = match &cur {
            None => true,
            Some(c) => {
                let other = same_change(
                    (e.version.as_deref(), e.commit.as_deref()),
                    (c.version.as_deref(), c.commit.as_deref()),
                ) == Some(false);
                other
                    || (c.finished
                        && matches!(
                            e.status,
                            DeployStatus::Queued
                                | DeployStatus::InProgress
                                | DeployStatus::Deployed
                        ))
            }
        };
        if starts {
            if let Some(c) = cur.take() {
                out.push(c.d);
            }
            spans.push((i, i));
            cur = Some(Open {
                d: Deployment {
                    started_at: e.at,
                    deployed_at: None,
                    failed_at: None,
                    restored_at: None,
                    commit_at: None,
                    rolled_back: false,
                },
                version: None,
                commit: None,
                finished: false,
            });
        }
        let c = cur.as_mut().expect("a deployment is open");
        if let Some(span) = spans.last_mut() {
            span.1 = i;
        }
        if c.version.is_none() {
            c.version = e.version.clone();
        }
        if c.commit.is_none() {
            c.commit = e.commit.clone();
        }
        if let Some(t) = e.commit_at {
            c.d.commit_at = Some(c.d.commit_at.map_or(t, |x| x.min(t)));
        }
        match e.status {
            DeployStatus::Deployed | DeployStatus::Healthy if c.d.deployed_at.is_none() => {
                c.d.deployed_at = Some(e.at)
            }
            DeployStatus::Failed | DeployStatus::Degraded if c.d.failed_at.is_none() => {
                c.d.failed_at = Some(e.at)
            }
            _ => {}
        }
        c.finished |= e.status.is_final();
    }
    if let Some(c) = cur.take() {
        out.push(c.d);
    }

    // A rollback undoes the last deployment that reached production before
    // the rollback was asked for.
    let mut rollback_of: Vec<Option<Rollback>> = vec![None; out.len()];
    for r in rollbacks {
        let undone = out
            .iter()
            .enumerate()
            .rev()
            .find(|(_, d)| d.counts() && d.started_at < r.created_at);
        if let Some((k, _)) = undone {
            out[k].rolled_back = true;
            if out[k].failed_at.is_none() {
                out[k].failed_at = Some(r.created_at);
            }
            rollback_of[k] = Some(*r);
        }
    }

    // Restored: the first `healthy` event after the failure, or the first
    // `deployed` of a later deployment, or the rollback's success.
    for (k, d) in out.iter_mut().enumerate() {
        let Some(failed_at) = d.failed_at else {
            continue;
        };
        let after_own = spans[k].1 + 1;
        let healthy = events
            .iter()
            .enumerate()
            .find(|(i, e)| {
                e.at > failed_at
                    && (e.status == DeployStatus::Healthy
                        || (e.status == DeployStatus::Deployed && *i >= after_own))
            })
            .map(|(_, e)| e.at);
        let by_rollback = rollback_of[k].map(|r| r.succeeded_at);
        d.restored_at = match (healthy, by_rollback) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    out
}

/// The four DORA figures of a set of deployments in a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dora {
    /// Deployments that reached production (succeeded or failed).
    pub deployments: u64,
    /// Deployments per week of the window.
    pub per_week: f64,
    /// Commit to production, of succeeded deployments whose events carried
    /// the commit's time.
    pub lead_time: Percentiles,
    /// Succeeded deployments with a commit time, of all succeeded ones.
    pub lead_time_coverage: Rate,
    /// Failed or rolled-back deployments, of all deployments.
    pub change_failure: Rate,
    /// Failure to the next healthy deploy, of failures that were restored.
    pub time_to_restore: Percentiles,
    /// Failures not restored by the end of the window.
    pub unrestored: u64,
}

impl Dora {
    pub fn of<'a>(all: impl IntoIterator<Item = &'a Deployment>, window_ms: i64) -> Dora {
        let counted: Vec<&Deployment> = all.into_iter().filter(|d| d.counts()).collect();
        let deployments = counted.len() as u64;
        let failed: Vec<&&Deployment> = counted.iter().filter(|d| d.failed()).collect();
        let succeeded = deployments - failed.len() as u64;
        let leads: Vec<i64> = counted.iter().filter_map(|d| d.lead_time()).collect();
        let restores: Vec<i64> = failed
            .iter()
            .filter_map(|d| Some(d.restored_at? - d.failed_at?))
            .collect();
        let weeks = window_ms as f64 / WEEK_MS as f64;
        Dora {
            deployments,
            per_week: if weeks > 0.0 {
                (deployments as f64 / weeks * 100.0).round() / 100.0
            } else {
                0.0
            },
            lead_time_coverage: Rate::new(leads.len() as u64, succeeded),
            lead_time: Percentiles::of(leads),
            change_failure: Rate::new(failed.len() as u64, deployments),
            unrestored: (failed.len() - restores.len()) as u64,
            time_to_restore: Percentiles::of(restores),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeployStatus::*;

    fn ev(at: i64, status: DeployStatus, version: Option<&str>) -> Event {
        Event {
            at,
            status,
            version: version.map(str::to_owned),
            commit: None,
            commit_at: None,
        }
    }

    #[test]
    fn events_group_into_deployments_by_change_and_by_finish() {
        let events = [
            ev(10, Queued, Some("1.0.0")),
            ev(20, InProgress, Some("1.0.0")),
            ev(30, Deployed, Some("1.0.0")),
            ev(40, Healthy, Some("1.0.0")),
            // another version: a new deployment, which degrades then heals
            ev(100, Deployed, Some("1.1.0")),
            ev(110, Degraded, Some("1.1.0")),
            ev(150, Healthy, Some("1.1.0")),
            // no version at all: each `deployed` after a finish is a new one
            ev(200, Deployed, None),
            ev(300, Deployed, None),
            ev(310, Failed, None),
            ev(400, Deployed, None),
            // cancelled: does not count
            ev(500, Queued, Some("2.0.0")),
            ev(510, Cancelled, Some("2.0.0")),
        ];
        let ds = deployments(&events, &[]);
        assert_eq!(ds.len(), 6);
        assert_eq!(ds[0].deployed_at, Some(30));
        assert_eq!((ds[1].failed_at, ds[1].restored_at), (Some(110), Some(150)));
        assert_eq!((ds[3].failed_at, ds[3].restored_at), (Some(310), Some(400)));
        assert!(!ds[5].counts());
        let dora = Dora::of(&ds, WEEK_MS);
        assert_eq!(dora.deployments, 5);
        assert_eq!(dora.change_failure, Rate::new(2, 5));
        assert_eq!(dora.time_to_restore.n, 2);
        assert_eq!(dora.time_to_restore.p50_ms, Some(40));
        assert_eq!(dora.time_to_restore.p90_ms, Some(90));
        assert_eq!(dora.per_week, 5.0);
        assert_eq!(dora.lead_time_coverage, Rate::new(0, 3));
    }

    #[test]
    fn sources_naming_a_change_differently_still_make_one_deployment() {
        // A deploy run names the commit; Argo CD the image tag and commit.
        let mut run = ev(10, InProgress, None);
        run.commit = Some("abc".into());
        let mut argo = ev(20, Healthy, Some("2.5.0"));
        argo.commit = Some("abc".into());
        let mut next = ev(30, Deployed, None);
        next.commit = Some("def".into());
        let ds = deployments(&[run, argo, next], &[]);
        assert_eq!(ds.len(), 2);
        assert_eq!(ds[0].deployed_at, Some(20));
    }

    #[test]
    fn a_rollback_fails_the_deployment_it_undid_and_its_deploy_restores() {
        let mut events = vec![
            ev(10, Deployed, Some("1.0.0")),
            ev(100, Deployed, Some("1.1.0")),
            ev(300, Deployed, Some("1.0.0")),
        ];
        events[1].commit_at = Some(40);
        let ds = deployments(
            &events,
            &[Rollback {
                created_at: 200,
                succeeded_at: 320,
            }],
        );
        assert!(ds[1].rolled_back);
        assert_eq!((ds[1].failed_at, ds[1].restored_at), (Some(200), Some(300)));
        // a failed deployment has no lead time
        assert_eq!(ds[1].lead_time(), None);
        let dora = Dora::of(&ds, WEEK_MS);
        assert_eq!(dora.change_failure, Rate::new(1, 3));
        assert_eq!(dora.time_to_restore.p50_ms, Some(100));
    }

    #[test]
    fn lead_time_runs_from_the_commit_and_an_open_failure_is_unrestored() {
        let mut e = ev(1_000, Deployed, Some("1.0.0"));
        e.commit_at = Some(400);
        let ds = deployments(&[e, ev(2_000, Failed, Some("1.1.0"))], &[]);
        let dora = Dora::of(&ds, WEEK_MS);
        assert_eq!(dora.lead_time.p50_ms, Some(600));
        assert_eq!(dora.lead_time_coverage, Rate::new(1, 1));
        assert_eq!(dora.unrestored, 1);
        assert_eq!(dora.time_to_restore.n, 0);
    }
}
