//! Who moved a request: a person, or Paver itself in one of its roles. The
//! audit log records each as a name and a chat label.

/// The author of a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person, by their audit name (catalog user, or `platform:id`) and
    /// how chat shows them.
    Person { name: String, chat: String },
    /// Policy deciding (allow, approval needed, deny, expiry at a press).
    Policy,
    /// The executor running a job.
    Executor,
    /// Paver's own housekeeping: recovery after a restart, the sweeper.
    Housekeeping,
}

impl Actor {
    /// The name in the audit log.
    pub fn name(&self) -> &str {
        match self {
            Actor::Person { name, .. } => name,
            Actor::Policy => "policy",
            Actor::Executor => "executor",
            Actor::Housekeeping => "paver",
        }
    }

    /// How the audit log shows it in chat.
    pub fn chat(&self) -> &str {
        match self {
            Actor::Person { chat, .. } => chat,
            Actor::Policy => "policy",
            Actor::Executor | Actor::Housekeeping => "paver",
        }
    }
}
