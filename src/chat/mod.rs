//! The platform-neutral chat model: what Paver says, before any adapter
//! renders it as Block Kit, a Discord embed or console text.

pub mod console;
pub mod deploys;
pub mod dispatcher;
pub mod docs;
pub mod learned;
pub mod messages;
pub mod notices;
pub mod office_hours;
pub mod report;
pub mod scorecards;
pub mod send;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What became of an inbound message (for adapters and tests).
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// A redelivered event: acknowledged, not processed again.
    Duplicate,
    Replied,
    Ignored,
    /// A request was proposed (or amended): its id.
    Proposed(String),
}

/// One message or card.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Message {
    pub title: Option<String>,
    pub text: String,
    /// Label and value pairs, shown as a small table.
    pub fields: Vec<(String, String)>,
    /// A footnote: policy notes, who did what, when.
    pub context: Option<String>,
    /// The first button is always the primary, confirming one.
    pub buttons: Vec<Button>,
    pub tone: Tone,
    /// Chat user ids Paver means to notify: their `<@id>` in the text is a
    /// mention that pings. Any other `<@…>` (in words a user wrote, say) is
    /// shown as text, so nobody can make Paver ping people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    #[default]
    Info,
    Success,
    Warning,
    Danger,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub style: ButtonStyle,
    /// Encoded [`ButtonPayload`]: the operation, a request id and a nonce.
    pub payload: String,
    /// A confirmation question shown before a destructive press.
    pub confirm: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonStyle {
    Primary,
    Danger,
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ButtonOp {
    Confirm,
    Cancel,
    Approve,
    Deny,
    Retry,
    /// Propose what the request needs first (an environment to create).
    First,
    /// A scorecard nag's: hide the check for a week. The id is a nag item's.
    Snooze,
    /// A scorecard nag's: the team won't fix the check (with a reason).
    WontFix,
    /// A scorecard nag's: evaluate the service again now.
    Recheck,
    /// A docs answer's: it helped. The id is a question's.
    Helpful,
    /// A docs answer's: it did not help (recorded as a docs gap).
    NotHelpful,
    /// A docs answer's: hand the question to the platform team.
    AskHuman,
    /// A docs answer's (or its handoff's): put it on the office-hours agenda.
    OfficeHours,
}

/// What a form asking for a reason says, for one operation: a Slack modal,
/// a Discord modal, or the console's prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonAsk {
    /// The form's title (Slack allows 24 characters, Discord 45).
    pub title: &'static str,
    /// The text field's label.
    pub label: &'static str,
    /// Greyed-out text in the empty field.
    pub placeholder: &'static str,
    /// The submit button's label (Slack's; Discord's is its own).
    pub submit: &'static str,
}

/// The text field of a reason form: the same id on every platform, so the
/// edges read back the field they rendered.
pub const REASON_FIELD: &str = "reason";

impl ButtonOp {
    /// Whether a press must come with a reason, and how to ask for it. The
    /// one place that decides it: the edges open a form instead of acting
    /// on a press of such a button, and the request flow refuses one that
    /// comes without a reason. No wildcard, so a new op has to say.
    pub fn reason_ask(self) -> Option<ReasonAsk> {
        match self {
            ButtonOp::Deny => Some(ReasonAsk {
                title: "Deny this request",
                label: "Why deny it?",
                placeholder: "The requester sees this, and the audit log keeps it.",
                submit: "Deny",
            }),
            ButtonOp::WontFix => Some(ReasonAsk {
                title: "Won't fix this check",
                label: "Why won't the team fix it?",
                placeholder: "Shown in every later digest.",
                submit: "Won't fix",
            }),
            ButtonOp::Confirm
            | ButtonOp::Cancel
            | ButtonOp::Approve
            | ButtonOp::Retry
            | ButtonOp::First
            | ButtonOp::Snooze
            | ButtonOp::Recheck
            | ButtonOp::Helpful
            | ButtonOp::NotHelpful
            | ButtonOp::AskHuman
            | ButtonOp::OfficeHours => None,
        }
    }

    pub fn needs_reason(self) -> bool {
        self.reason_ask().is_some()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ButtonOp::Confirm => "confirm",
            ButtonOp::Cancel => "cancel",
            ButtonOp::Approve => "approve",
            ButtonOp::Deny => "deny",
            ButtonOp::Retry => "retry",
            ButtonOp::First => "first",
            ButtonOp::Snooze => "snooze",
            ButtonOp::WontFix => "wontfix",
            ButtonOp::Recheck => "recheck",
            ButtonOp::Helpful => "helpful",
            ButtonOp::NotHelpful => "unhelpful",
            ButtonOp::AskHuman => "askhuman",
            ButtonOp::OfficeHours => "officehours",
        }
    }

    /// Whether the button is on a scorecard digest (its id a nag item's)
    /// rather than on a request's card.
    pub fn is_nag(self) -> bool {
        matches!(
            self,
            ButtonOp::Snooze | ButtonOp::WontFix | ButtonOp::Recheck
        )
    }

    /// Whether the button is on a docs answer or a handoff (its id a
    /// question's): the docs flow's.
    pub fn is_docs(self) -> bool {
        matches!(
            self,
            ButtonOp::Helpful | ButtonOp::NotHelpful | ButtonOp::AskHuman | ButtonOp::OfficeHours
        )
    }
}

/// What a button carries: never the action, only which request and which
/// operation, plus the request's nonce so ids cannot be guessed into presses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonPayload {
    pub op: ButtonOp,
    pub request_id: String,
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Paver button payload: {0:?}")]
pub struct BadPayload(pub String);

impl ButtonPayload {
    pub fn encode(&self) -> String {
        format!("{}:{}:{}", self.op.as_str(), self.request_id, self.nonce)
    }

    pub fn parse(s: &str) -> Result<Self, BadPayload> {
        let bad = || BadPayload(s.chars().take(100).collect());
        let mut it = s.splitn(3, ':');
        let op = match it.next().ok_or_else(bad)? {
            "confirm" => ButtonOp::Confirm,
            "cancel" => ButtonOp::Cancel,
            "approve" => ButtonOp::Approve,
            "deny" => ButtonOp::Deny,
            "retry" => ButtonOp::Retry,
            "first" => ButtonOp::First,
            "snooze" => ButtonOp::Snooze,
            "wontfix" => ButtonOp::WontFix,
            "recheck" => ButtonOp::Recheck,
            "helpful" => ButtonOp::Helpful,
            "unhelpful" => ButtonOp::NotHelpful,
            "askhuman" => ButtonOp::AskHuman,
            "officehours" => ButtonOp::OfficeHours,
            _ => return Err(bad()),
        };
        let request_id = it.next().ok_or_else(bad)?;
        let nonce = it.next().ok_or_else(bad)?;
        let valid = |p: &str| {
            !p.is_empty()
                && p.len() <= 40
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !valid(request_id) || !valid(nonce) {
            return Err(bad());
        }
        Ok(ButtonPayload {
            op,
            request_id: request_id.to_owned(),
            nonce: nonce.to_owned(),
        })
    }
}

pub use crate::domain::Platform;

/// Someone in a chat, and who they are in the catalog (if anyone).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatUser {
    pub platform: Platform,
    pub id: String,
    pub catalog: Option<crate::domain::UserName>,
}

impl ChatUser {
    /// The name the audit log records: the catalog name, else the chat id.
    pub fn audit_name(&self) -> String {
        match &self.catalog {
            Some(u) => u.as_str().to_owned(),
            None => format!("{}:{}", self.platform, self.id),
        }
    }
    pub fn chat_label(&self) -> String {
        format!("{}:{}", self.platform, self.id)
    }
    /// This user as the author of a transition.
    pub fn actor(&self) -> crate::domain::Actor {
        crate::domain::Actor::Person {
            name: self.audit_name(),
            chat: self.chat_label(),
        }
    }
}

/// Where a message came from / goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub platform: Platform,
    pub channel: String,
    pub thread: Option<String>,
}

/// A message a user wrote to Paver.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The platform's event id, to drop redeliveries.
    pub event_id: Option<String>,
    pub user: ChatUser,
    pub conversation: Conversation,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    #[error("rate limited; retry after {0:?}")]
    RateLimited(std::time::Duration),
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// An adapter's sending side. Every call is made from the outbox, so an
/// adapter never needs its own retry loop.
#[async_trait]
pub trait ChatSink: Send + Sync {
    /// Posts a message (in a thread when given); returns the platform's
    /// reference to it (for updates and threading).
    async fn post(
        &self,
        channel: &str,
        thread: Option<&str>,
        message: &Message,
    ) -> Result<String, SendError>;
    async fn update(
        &self,
        channel: &str,
        message_ref: &str,
        message: &Message,
    ) -> Result<(), SendError>;
    /// A message only `user` sees.
    async fn ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread: Option<&str>,
        message: &Message,
    ) -> Result<(), SendError>;
    /// Posts a file to the channel (in a thread when given). A platform
    /// that takes no files refuses it for good.
    async fn upload(
        &self,
        channel: &str,
        thread: Option<&str>,
        file: &Upload,
    ) -> Result<(), SendError> {
        let _ = (channel, thread);
        Err(SendError::Permanent(format!(
            "{}: this chat takes no files",
            file.file_name
        )))
    }
}

/// A file to post (the report digest's chart), as its outbox row keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// `platform-report-2026-11-23.png`.
    pub file_name: String,
    /// What the chat shows as the file's title.
    pub title: String,
    /// The MIME type.
    pub content_type: String,
    /// The bytes, base64 (standard alphabet).
    pub data: String,
}

impl Upload {
    pub fn png(file_name: String, title: String, bytes: &[u8]) -> Self {
        use base64::Engine as _;
        Upload {
            file_name,
            title,
            content_type: "image/png".into(),
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    pub fn bytes(&self) -> Result<Vec<u8>, SendError> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .map_err(|e| SendError::Permanent(format!("{}: {e}", self.file_name)))
    }

    /// The outbox row's body.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("an upload serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_reject_junk() {
        let p = ButtonPayload {
            op: ButtonOp::Approve,
            request_id: "r-abc123".into(),
            nonce: "n0nce".into(),
        };
        assert_eq!(ButtonPayload::parse(&p.encode()).unwrap(), p);
        for bad in [
            "",
            "approve",
            "approve:r-1",
            "launch:r-1:n",
            "approve:r 1:n",
            "approve:r-1:n:x",
        ] {
            assert!(ButtonPayload::parse(bad).is_err(), "{bad}");
        }
    }
}
