//! Domain types: the typed action contract and the newtypes it is built from.
//!
//! Every value here is parsed once at the edge and is valid by construction,
//! so nothing past the parser re-checks a service name or an environment.

mod action;
mod actor;
pub mod approvers;
mod channel;
pub mod cost;
mod deploy;
mod golden_path;
mod names;
mod platform;
mod reason;
mod request_state;
mod resource;
pub mod scorecard;
pub mod topic;
mod version;
pub mod wording;

pub use action::{Action, ActionKind, Field, ScorecardTarget};
pub use actor::Actor;
pub use approvers::{same_identity, ApprovalRefused, Approvers, Directory};
pub use channel::{ChannelRef, ChannelRefError};
pub use cost::{estimate, Cents, CostItem, CostLine, Currency, MonthlyCost, Price, PriceTable};
pub use deploy::{DeployNotice, DeployStatus, DeployStep};
pub use golden_path::{GoldenPath, ResourceSize};
pub use names::{Environment, NameError, ServiceName, TeamName, TemplateName, UserName};
pub use platform::Platform;
pub use reason::{BadReason, Reason};
pub use request_state::{RequestState, Transition};
pub use resource::ResourceKind;
pub use version::Version;
