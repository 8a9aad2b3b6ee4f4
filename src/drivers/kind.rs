//! Which driver: the names `[drivers]` uses, and what each can do.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::ActionKind;

/// One of Paver's drivers, as `[drivers]` names it (`"gitops"`, …). An
/// unknown name is refused when the configuration is read. Ordered by name,
/// as `check-config` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    Argocd,
    Backstage,
    Gitops,
    Orchestrator,
}

impl DriverKind {
    pub const ALL: [DriverKind; 4] = [
        DriverKind::Argocd,
        DriverKind::Backstage,
        DriverKind::Gitops,
        DriverKind::Orchestrator,
    ];

    /// The name in the configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            DriverKind::Gitops => "gitops",
            DriverKind::Backstage => "backstage",
            DriverKind::Argocd => "argocd",
            DriverKind::Orchestrator => "orchestrator",
        }
    }

    /// Whether this driver can carry out `kind`; checked by `paver check-config`.
    pub fn supports(self, kind: ActionKind) -> bool {
        use ActionKind as K;
        match self {
            DriverKind::Gitops | DriverKind::Orchestrator => kind.is_mutating(),
            DriverKind::Backstage => matches!(kind, K::ScaffoldService | K::CreateEnvironment),
            DriverKind::Argocd => matches!(kind, K::Deploy | K::Rollback | K::Restart | K::Promote),
        }
    }

    /// Whether this driver can answer `status`.
    pub fn has_status(self) -> bool {
        matches!(self, DriverKind::Gitops | DriverKind::Argocd)
    }

    /// Whether this driver can report the URL of a new environment.
    pub fn reports_environment_urls(self) -> bool {
        self == DriverKind::Argocd
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_configuration_names() {
        for k in DriverKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<DriverKind>(&json).unwrap(), k);
        }
        assert!(serde_json::from_str::<DriverKind>("\"flux\"").is_err());
        let mut names: Vec<&str> = DriverKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        assert!(DriverKind::ALL.iter().map(|k| k.as_str()).eq(names));
    }
}
