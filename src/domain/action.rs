use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Environment, ResourceKind, ServiceName, TeamName, TemplateName, Version};

/// One platform action, exactly as the typed action contract describes it.
/// Serializes to the contract's JSON: `{"action": "deploy", "service": ...}`.
/// Its JSON Schema (`schemars`) is what an LLM is given to propose one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateEnvironment {
        service: ServiceName,
        environment: Environment,
        resources: Vec<ResourceKind>,
    },
    DestroyEnvironment {
        service: ServiceName,
        environment: Environment,
    },
    AddResource {
        service: ServiceName,
        environment: Environment,
        resources: Vec<ResourceKind>,
    },
    Deploy {
        service: ServiceName,
        environment: Environment,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<Version>,
    },
    Rollback {
        service: ServiceName,
        environment: Environment,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<Version>,
    },
    Promote {
        service: ServiceName,
        from: Environment,
        to: Environment,
    },
    Scale {
        service: ServiceName,
        environment: Environment,
        replicas: u32,
    },
    Restart {
        service: ServiceName,
        environment: Environment,
    },
    ScaffoldService {
        name: ServiceName,
        template: TemplateName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<TeamName>,
    },
    Status {
        service: ServiceName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        environment: Option<Environment>,
    },
    WhoOwns {
        service: ServiceName,
    },
    Scorecard {
        #[serde(flatten)]
        target: ScorecardTarget,
    },
    Ask {
        question: String,
    },
    Help,
    /// Chit-chat, thanks, emoji: not a request.
    #[serde(rename = "none")]
    Nothing,
    /// Not enough to act on: what is missing, and the names it could be.
    Clarify {
        missing: Vec<Field>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        candidates: Vec<String>,
        /// The action the user seemed to want; kept for follow-ups, not part
        /// of the wire contract.
        #[serde(skip)]
        intent: Option<ActionKind>,
    },
}

/// What a scorecard is asked for: one service or a whole team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ScorecardTarget {
    Service { service: ServiceName },
    Team { team: TeamName },
}

/// The names of an action's fields, as `clarify` reports them missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Service,
    Environment,
    Resources,
    Version,
    From,
    To,
    Replicas,
    Name,
    Template,
    Owner,
    Team,
    Question,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Service => "service",
            Field::Environment => "environment",
            Field::Resources => "resources",
            Field::Version => "version",
            Field::From => "from",
            Field::To => "to",
            Field::Replicas => "replicas",
            Field::Name => "name",
            Field::Template => "template",
            Field::Owner => "owner",
            Field::Team => "team",
            Field::Question => "question",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The action's name without its fields: the key for policy, metrics and help.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    CreateEnvironment,
    DestroyEnvironment,
    AddResource,
    Deploy,
    Rollback,
    Promote,
    Scale,
    Restart,
    ScaffoldService,
    Status,
    WhoOwns,
    Scorecard,
    Ask,
    Help,
    #[serde(rename = "none")]
    Nothing,
    Clarify,
}

impl ActionKind {
    pub const ALL: [ActionKind; 16] = [
        ActionKind::CreateEnvironment,
        ActionKind::DestroyEnvironment,
        ActionKind::AddResource,
        ActionKind::Deploy,
        ActionKind::Rollback,
        ActionKind::Promote,
        ActionKind::Scale,
        ActionKind::Restart,
        ActionKind::ScaffoldService,
        ActionKind::Status,
        ActionKind::WhoOwns,
        ActionKind::Scorecard,
        ActionKind::Ask,
        ActionKind::Help,
        ActionKind::Nothing,
        ActionKind::Clarify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::CreateEnvironment => "create_environment",
            ActionKind::DestroyEnvironment => "destroy_environment",
            ActionKind::AddResource => "add_resource",
            ActionKind::Deploy => "deploy",
            ActionKind::Rollback => "rollback",
            ActionKind::Promote => "promote",
            ActionKind::Scale => "scale",
            ActionKind::Restart => "restart",
            ActionKind::ScaffoldService => "scaffold_service",
            ActionKind::Status => "status",
            ActionKind::WhoOwns => "who_owns",
            ActionKind::Scorecard => "scorecard",
            ActionKind::Ask => "ask",
            ActionKind::Help => "help",
            ActionKind::Nothing => "none",
            ActionKind::Clarify => "clarify",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        ActionKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the action changes the platform (and so needs a confirmation).
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            ActionKind::CreateEnvironment
                | ActionKind::DestroyEnvironment
                | ActionKind::AddResource
                | ActionKind::Deploy
                | ActionKind::Rollback
                | ActionKind::Promote
                | ActionKind::Scale
                | ActionKind::Restart
                | ActionKind::ScaffoldService
        )
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::CreateEnvironment { .. } => ActionKind::CreateEnvironment,
            Action::DestroyEnvironment { .. } => ActionKind::DestroyEnvironment,
            Action::AddResource { .. } => ActionKind::AddResource,
            Action::Deploy { .. } => ActionKind::Deploy,
            Action::Rollback { .. } => ActionKind::Rollback,
            Action::Promote { .. } => ActionKind::Promote,
            Action::Scale { .. } => ActionKind::Scale,
            Action::Restart { .. } => ActionKind::Restart,
            Action::ScaffoldService { .. } => ActionKind::ScaffoldService,
            Action::Status { .. } => ActionKind::Status,
            Action::WhoOwns { .. } => ActionKind::WhoOwns,
            Action::Scorecard { .. } => ActionKind::Scorecard,
            Action::Ask { .. } => ActionKind::Ask,
            Action::Help => ActionKind::Help,
            Action::Nothing => ActionKind::Nothing,
            Action::Clarify { .. } => ActionKind::Clarify,
        }
    }

    /// The catalog service the action is about, if any.
    pub fn service(&self) -> Option<&ServiceName> {
        match self {
            Action::CreateEnvironment { service, .. }
            | Action::DestroyEnvironment { service, .. }
            | Action::AddResource { service, .. }
            | Action::Deploy { service, .. }
            | Action::Rollback { service, .. }
            | Action::Promote { service, .. }
            | Action::Scale { service, .. }
            | Action::Restart { service, .. }
            | Action::Status { service, .. }
            | Action::WhoOwns { service } => Some(service),
            Action::Scorecard {
                target: ScorecardTarget::Service { service },
            } => Some(service),
            _ => None,
        }
    }

    /// The environment the action changes or reads; for `promote`, the target.
    /// The version a deploy or rollback names, if it names one.
    pub fn version(&self) -> Option<&Version> {
        match self {
            Action::Deploy { version, .. } | Action::Rollback { version, .. } => version.as_ref(),
            _ => None,
        }
    }

    pub fn environment(&self) -> Option<Environment> {
        match self {
            Action::CreateEnvironment { environment, .. }
            | Action::DestroyEnvironment { environment, .. }
            | Action::AddResource { environment, .. }
            | Action::Deploy { environment, .. }
            | Action::Rollback { environment, .. }
            | Action::Scale { environment, .. }
            | Action::Restart { environment, .. } => Some(*environment),
            Action::Promote { to, .. } => Some(*to),
            Action::Status { environment, .. } => *environment,
            _ => None,
        }
    }

    pub fn clarify(intent: ActionKind, missing: Vec<Field>, candidates: Vec<String>) -> Self {
        Action::Clarify {
            missing,
            candidates,
            intent: Some(intent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(s: &str) -> ServiceName {
        ServiceName::parse(s).unwrap()
    }

    #[test]
    fn serializes_to_the_contract() {
        let a = Action::CreateEnvironment {
            service: svc("order-service"),
            environment: Environment::Staging,
            resources: vec![ResourceKind::Postgres, ResourceKind::Redis],
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"action": "create_environment", "service": "order-service",
                   "environment": "staging", "resources": ["postgres", "redis"]})
        );
        let d = Action::Deploy {
            service: svc("checkout-api"),
            environment: Environment::Production,
            version: None,
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"action": "deploy", "service": "checkout-api", "environment": "production"})
        );
        assert_eq!(
            serde_json::to_value(Action::Nothing).unwrap(),
            json!({"action": "none"})
        );
        let sc = Action::Scorecard {
            target: ScorecardTarget::Team {
                team: TeamName::parse("team-data").unwrap(),
            },
        };
        assert_eq!(
            serde_json::to_value(&sc).unwrap(),
            json!({"action": "scorecard", "team": "team-data"})
        );
        let c = Action::clarify(ActionKind::Deploy, vec![Field::Service], vec![]);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"action": "clarify", "missing": ["service"]})
        );
    }

    #[test]
    fn round_trips_and_rejects_invalid_values() {
        let v = json!({"action": "promote", "service": "order-service", "from": "staging", "to": "production"});
        let a: Action = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&a).unwrap(), v);
        let sc: Action =
            serde_json::from_value(json!({"action": "scorecard", "service": "cart-service"}))
                .unwrap();
        assert_eq!(sc.service().unwrap().as_str(), "cart-service");
        for bad in [
            json!({"action": "deploy", "service": "Order Service", "environment": "staging"}),
            json!({"action": "deploy", "service": "order-service", "environment": "moon"}),
            json!({"action": "scale", "service": "order-service", "environment": "dev", "replicas": -1}),
            json!({"action": "launch_rockets"}),
        ] {
            assert!(
                serde_json::from_value::<Action>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn kinds_have_stable_names() {
        for k in ActionKind::ALL {
            assert_eq!(ActionKind::from_name(k.as_str()), Some(k));
        }
    }
}
