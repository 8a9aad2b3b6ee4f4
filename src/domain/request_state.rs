//! The request lifecycle as an explicit state machine.
//!
//! ```text
//! proposed ─confirm→ confirmed ─need_approval→ awaiting_approval ─approve→ approved
//!     │                  └──────────auto_approve───────────────────────────↗   │
//!     ├─cancel/deny/expire                 ├─deny/cancel/expire              start
//!     ↓                                    ↓                                   ↓
//! cancelled · denied · expired                         succeeded ←succeed─ executing ─fail→ failed
//!                                                                                   ↑         │
//!                                                                                   └─retry───┘ (to confirmed:
//!                                                                       policy decides again; failed ─expire→ expired)
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Proposed,
    Confirmed,
    AwaitingApproval,
    Approved,
    Executing,
    Succeeded,
    Failed,
    Cancelled,
    Denied,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// The requester pressed the confirming button.
    Confirm,
    /// Policy needs an approver.
    NeedApproval,
    /// Policy needs nobody else: confirmation is enough.
    AutoApprove,
    Approve,
    Deny,
    Cancel,
    Expire,
    /// The executor took the job.
    Start,
    Succeed,
    Fail,
    /// A human asked to run a failed request again: back to `confirmed`,
    /// so policy (and, where it asks for one, a still valid approval)
    /// decides again before anything runs.
    Retry,
}

impl RequestState {
    pub const ALL: [RequestState; 10] = [
        RequestState::Proposed,
        RequestState::Confirmed,
        RequestState::AwaitingApproval,
        RequestState::Approved,
        RequestState::Executing,
        RequestState::Succeeded,
        RequestState::Failed,
        RequestState::Cancelled,
        RequestState::Denied,
        RequestState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Proposed => "proposed",
            RequestState::Confirmed => "confirmed",
            RequestState::AwaitingApproval => "awaiting_approval",
            RequestState::Approved => "approved",
            RequestState::Executing => "executing",
            RequestState::Succeeded => "succeeded",
            RequestState::Failed => "failed",
            RequestState::Cancelled => "cancelled",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        RequestState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No transition leaves a final state (a failed request can be retried,
    /// so it is not final).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestState::Succeeded
                | RequestState::Cancelled
                | RequestState::Denied
                | RequestState::Expired
        )
    }

    /// The only place transitions are defined.
    pub fn apply(self, t: Transition) -> Option<RequestState> {
        use RequestState as S;
        use Transition as T;
        Some(match (self, t) {
            (S::Proposed, T::Confirm) => S::Confirmed,
            (S::Proposed, T::Cancel) => S::Cancelled,
            (S::Proposed, T::Deny) => S::Denied,
            (S::Proposed, T::Expire) => S::Expired,
            (S::Confirmed, T::NeedApproval) => S::AwaitingApproval,
            (S::Confirmed, T::AutoApprove) => S::Approved,
            (S::Confirmed, T::Deny) => S::Denied,
            (S::Confirmed, T::Cancel) => S::Cancelled,
            (S::AwaitingApproval, T::Approve) => S::Approved,
            (S::AwaitingApproval, T::Deny) => S::Denied,
            (S::AwaitingApproval, T::Cancel) => S::Cancelled,
            (S::AwaitingApproval, T::Expire) => S::Expired,
            (S::Approved, T::Start) => S::Executing,
            (S::Executing, T::Succeed) => S::Succeeded,
            (S::Executing, T::Fail) => S::Failed,
            // A job whose executor died is failed by recovery.
            (S::Approved, T::Fail) => S::Failed,
            (S::Failed, T::Retry) => S::Confirmed,
            // Nobody retried it in time.
            (S::Failed, T::Expire) => S::Expired,
            _ => return None,
        })
    }

    /// The states a transition may start from.
    pub fn sources(t: Transition) -> Vec<RequestState> {
        RequestState::ALL
            .into_iter()
            .filter(|s| s.apply(t).is_some())
            .collect()
    }
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Confirm => "confirm",
            Transition::NeedApproval => "need_approval",
            Transition::AutoApprove => "auto_approve",
            Transition::Approve => "approve",
            Transition::Deny => "deny",
            Transition::Cancel => "cancel",
            Transition::Expire => "expire",
            Transition::Start => "start",
            Transition::Succeed => "succeed",
            Transition::Fail => "fail",
            Transition::Retry => "retry",
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_paths() {
        let s = RequestState::Proposed;
        let s = s.apply(Transition::Confirm).unwrap();
        let s = s.apply(Transition::NeedApproval).unwrap();
        let s = s.apply(Transition::Approve).unwrap();
        let s = s.apply(Transition::Start).unwrap();
        assert_eq!(s.apply(Transition::Succeed), Some(RequestState::Succeeded));
        let s = RequestState::Confirmed
            .apply(Transition::AutoApprove)
            .unwrap();
        assert_eq!(s, RequestState::Approved);
    }

    #[test]
    fn final_states_have_no_way_out() {
        for s in RequestState::ALL.into_iter().filter(|s| s.is_final()) {
            for t in [
                Transition::Confirm,
                Transition::NeedApproval,
                Transition::AutoApprove,
                Transition::Approve,
                Transition::Deny,
                Transition::Cancel,
                Transition::Expire,
                Transition::Start,
                Transition::Succeed,
                Transition::Fail,
                Transition::Retry,
            ] {
                assert_eq!(s.apply(t), None, "{s} --{t}-->");
            }
        }
    }

    #[test]
    fn nothing_executes_unapproved_and_nothing_is_approved_twice() {
        assert_eq!(
            RequestState::sources(Transition::Start),
            [RequestState::Approved]
        );
        assert_eq!(
            RequestState::sources(Transition::Approve),
            [RequestState::AwaitingApproval]
        );
        assert_eq!(RequestState::Executing.apply(Transition::Cancel), None);
        // A retry is decided again like a fresh confirmation.
        assert_eq!(
            RequestState::Failed.apply(Transition::Retry),
            Some(RequestState::Confirmed)
        );
        assert_eq!(
            RequestState::sources(Transition::AutoApprove),
            [RequestState::Confirmed]
        );
        for s in RequestState::ALL {
            assert_eq!(RequestState::parse(s.as_str()), Some(s));
        }
    }
}
