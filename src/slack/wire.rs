//! What Slack sends, typed at the edge: Events API payloads, interactivity
//! payloads and slash commands, over HTTP or inside Socket Mode envelopes.
//! Nothing past this module reads Slack's JSON.
//!
//! These are Paver's own small serde structs rather than slack-morphism's
//! event types, which do not fit the payloads Paver must take:
//!
//! - `SlackAppMentionEvent` has no `bot_id` (nor `subtype`): a bot's
//!   mention would pass for a person's, and Paver must ignore bots.
//! - `SlackPushEventCallback` requires `event_time`, and a message event
//!   that does not match its model silently becomes `Unknown(Value)`.
//! - `SlackInteractionEvent` knows no fallback for interaction types it
//!   does not model (a legacy `interactive_message` is an error, where
//!   Paver acknowledges and ignores it), requires `team`, `container` and
//!   `trigger_id`, and parses the whole echoed message down to its blocks,
//!   so one block kind it does not model refuses the press.
//! - `SlackCommandEvent` drops `api_app_id` (needed for `slack.app_id`) and
//!   requires `command` and `response_url`, which Paver does not use.
//! - `SlackSocketModeEvent` fails the whole envelope when its payload does
//!   not match, where Paver must still acknowledge it (or, for a payload it
//!   cannot store now, leave it unacknowledged).
//!
//! The corpus samples (`../shared/corpus/slack`) all parse here; see the
//! tests.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::chat::{BadPayload, ButtonPayload, REASON_FIELD};
use crate::domain::{BadReason, Reason};

/// What is wrong with a payload; the HTTP answer (400) names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("not an Events API payload: {0}")]
    NotJson(String),
    #[error("no type")]
    NoType,
    #[error("url_verification without a challenge")]
    NoChallenge,
    #[error("event_callback without an event")]
    NoEvent,
    #[error("event_callback without an event_id")]
    NoEventId,
    #[error("form body is not UTF-8")]
    FormNotUtf8,
    #[error("not a form body")]
    NotAForm,
    #[error("no payload field")]
    NoPayloadField,
    #[error("payload is not JSON: {0}")]
    PayloadNotJson(String),
    #[error("interaction without a type")]
    InteractionWithoutType,
    #[error("block_actions without {0}")]
    BlockActionsWithout(&'static str),
    #[error("view_submission without {0}")]
    ViewSubmissionWithout(&'static str),
    #[error("a reason form's private_metadata is not a button payload: {0}")]
    NotAPayload(#[from] BadPayload),
    #[error("slash command without {0}")]
    CommandWithout(&'static str),
}

/// Where a payload says it comes from: its workspace and app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    pub team: Option<String>,
    pub app: Option<String>,
}

// ----- Events API ------------------------------------------------------------

/// An Events API payload (an HTTP body, or a Socket Mode `events_api`
/// envelope's payload).
#[derive(Debug, Clone, PartialEq)]
pub enum EventsPayload {
    UrlVerification {
        challenge: String,
    },
    Callback(Box<Callback>),
    /// Another payload type (`app_rate_limited`, …): acknowledged, ignored.
    Other(String),
}

/// An `event_callback`.
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub event_id: String,
    pub origin: Source,
    /// Paver's own user id, when the authorization names a bot.
    pub bot_user: Option<String>,
    pub event: SlackEvent,
}

/// The `event` of an `event_callback`, reduced to what decides whether
/// Paver answers it. Stored in the inbox as is, in Slack's own field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SlackEvent {
    AppMention(MessageEvent),
    Message(MessageEvent),
    /// Any other event type: stored, then ignored.
    #[serde(other)]
    Other,
}

/// A message or a mention.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<ChannelType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    /// Set when a bot (Paver included) wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<String>,
    /// Set on edits, deletions, joins, …: never a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelType {
    /// A direct message with Paver.
    Im,
    Channel,
    Group,
    Mpim,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct PushWire {
    #[serde(rename = "type")]
    kind: Option<String>,
    challenge: Option<String>,
    event: Option<SlackEvent>,
    event_id: Option<String>,
    team_id: Option<String>,
    api_app_id: Option<String>,
    #[serde(default)]
    authorizations: Option<Vec<AuthorizationWire>>,
}

#[derive(Deserialize)]
struct AuthorizationWire {
    user_id: Option<String>,
    is_bot: Option<bool>,
}

impl EventsPayload {
    pub fn parse(body: &[u8]) -> Result<Self, Malformed> {
        let w: PushWire =
            serde_json::from_slice(body).map_err(|e| Malformed::NotJson(e.to_string()))?;
        match w.kind.as_deref() {
            None => Err(Malformed::NoType),
            Some("url_verification") => Ok(EventsPayload::UrlVerification {
                challenge: w.challenge.ok_or(Malformed::NoChallenge)?,
            }),
            Some("event_callback") => {
                let event = w.event.ok_or(Malformed::NoEvent)?;
                let event_id = w.event_id.ok_or(Malformed::NoEventId)?;
                let bot_user = w
                    .authorizations
                    .and_then(|a| a.into_iter().next())
                    .filter(|a| a.is_bot == Some(true))
                    .and_then(|a| a.user_id);
                Ok(EventsPayload::Callback(Box::new(Callback {
                    event_id,
                    origin: Source {
                        team: w.team_id,
                        app: w.api_app_id,
                    },
                    bot_user,
                    event,
                })))
            }
            Some(other) => Ok(EventsPayload::Other(other.to_owned())),
        }
    }
}

// ----- Interactivity ---------------------------------------------------------

/// An interactivity payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub origin: Source,
    pub kind: InteractionKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InteractionKind {
    /// Button presses.
    BlockActions(Presses),
    /// A reason form (the modal a press of a button that needs a reason
    /// opened) submitted.
    ReasonGiven(ReasonGiven),
    /// Other modals' submits, shortcuts, …: Paver has none of them.
    Other(String),
}

/// The `callback_id` of Paver's reason form: its submissions are the only
/// ones Paver reads.
pub const REASON_VIEW: &str = "paver_reason";

/// A submitted reason form: who, the press it stands for (its
/// `private_metadata`, which holds nothing else), and what they typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonGiven {
    pub user: String,
    pub payload: ButtonPayload,
    /// What was typed, parsed; a refusal is shown in the form.
    pub reason: Result<Reason, BadReason>,
    /// Stable for one delivery: the inbox key.
    pub delivery: String,
}

/// A `block_actions` payload: who pressed what, where.
#[derive(Debug, Clone, PartialEq)]
pub struct Presses {
    pub user: String,
    pub channel: String,
    pub thread: Option<String>,
    /// The pressed buttons' values.
    pub values: Vec<String>,
    /// Opens a modal in answer to this press, for about 3 s.
    pub trigger_id: Option<String>,
    /// Stable for one delivery (Slack's retries repeat it), different for
    /// every other: the inbox key.
    pub delivery: String,
}

#[derive(Deserialize)]
struct InteractionWire {
    #[serde(rename = "type")]
    kind: Option<String>,
    team: Option<IdWire>,
    user: Option<UserWire>,
    team_id: Option<String>,
    api_app_id: Option<String>,
    channel: Option<IdWire>,
    container: Option<ContainerWire>,
    message: Option<ThreadWire>,
    actions: Option<Vec<ActionWire>>,
    trigger_id: Option<String>,
    view: Option<ViewWire>,
}

#[derive(Deserialize)]
struct ViewWire {
    callback_id: Option<String>,
    private_metadata: Option<String>,
    state: Option<ViewStateWire>,
}

/// `view.state.values`: block id → action id → the input's state.
#[derive(Deserialize)]
struct ViewStateWire {
    #[serde(default)]
    values: HashMap<String, HashMap<String, InputWire>>,
}

#[derive(Deserialize)]
struct InputWire {
    value: Option<String>,
}

#[derive(Deserialize)]
struct IdWire {
    id: Option<String>,
}

#[derive(Deserialize)]
struct UserWire {
    id: Option<String>,
    team_id: Option<String>,
}

#[derive(Deserialize)]
struct ContainerWire {
    channel_id: Option<String>,
}

#[derive(Deserialize)]
struct ThreadWire {
    thread_ts: Option<String>,
}

#[derive(Deserialize)]
struct ActionWire {
    value: Option<String>,
}

impl Interaction {
    /// A form body with a `payload` field (HTTP).
    pub fn parse_form(body: &[u8]) -> Result<Self, Malformed> {
        let f = form(body)?;
        let raw = f.get("payload").ok_or(Malformed::NoPayloadField)?;
        Self::parse_json(raw)
    }

    /// The payload itself (HTTP's `payload` field, or a Socket Mode
    /// `interactive` envelope's payload).
    pub fn parse_json(raw: &str) -> Result<Self, Malformed> {
        let w: InteractionWire =
            serde_json::from_str(raw).map_err(|e| Malformed::PayloadNotJson(e.to_string()))?;
        let kind = w.kind.ok_or(Malformed::InteractionWithoutType)?;
        let team = w
            .team
            .and_then(|t| t.id)
            .or_else(|| w.user.as_ref().and_then(|u| u.team_id.clone()))
            .or(w.team_id);
        let origin = Source {
            team,
            app: w.api_app_id,
        };
        if kind == "view_submission" {
            let view = w.view.ok_or(Malformed::ViewSubmissionWithout("a view"))?;
            if view.callback_id.as_deref() != Some(REASON_VIEW) {
                return Ok(Interaction {
                    origin,
                    kind: InteractionKind::Other(kind),
                });
            }
            let missing = Malformed::ViewSubmissionWithout;
            let user = w.user.and_then(|u| u.id).ok_or(missing("a user"))?;
            let metadata = view.private_metadata.ok_or(missing("private_metadata"))?;
            let payload = ButtonPayload::parse(&metadata)?;
            // A field left empty comes without a value (and Slack lets a
            // required one through when it is only spaces).
            let typed = view
                .state
                .and_then(|mut s| s.values.remove(REASON_FIELD))
                .and_then(|mut inputs| inputs.remove(REASON_FIELD))
                .and_then(|i| i.value)
                .unwrap_or_default();
            return Ok(Interaction {
                origin,
                kind: InteractionKind::ReasonGiven(ReasonGiven {
                    user,
                    payload,
                    reason: Reason::parse(&typed),
                    delivery: digest("view", raw),
                }),
            });
        }
        if kind != "block_actions" {
            return Ok(Interaction {
                origin,
                kind: InteractionKind::Other(kind),
            });
        }
        let missing = Malformed::BlockActionsWithout;
        let user = w.user.and_then(|u| u.id).ok_or(missing("a user"))?;
        let channel = w
            .channel
            .and_then(|c| c.id)
            .or_else(|| w.container.and_then(|c| c.channel_id))
            .ok_or(missing("a channel"))?;
        let values = w
            .actions
            .ok_or(missing("actions"))?
            .into_iter()
            .filter_map(|a| a.value)
            .collect();
        Ok(Interaction {
            origin,
            kind: InteractionKind::BlockActions(Presses {
                user,
                channel,
                thread: w.message.and_then(|m| m.thread_ts),
                values,
                trigger_id: w.trigger_id,
                // Interactions carry no event id: the delivery itself is the key.
                delivery: digest("interaction", raw),
            }),
        })
    }
}

// ----- Slash commands --------------------------------------------------------

/// `/paver <text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashCommand {
    pub origin: Source,
    pub user: String,
    pub channel: String,
    /// Trimmed; empty for a bare `/paver`.
    pub text: String,
    /// Stable for one delivery: the inbox key.
    pub delivery: String,
}

impl SlashCommand {
    /// A form body (HTTP).
    pub fn parse_form(body: &[u8]) -> Result<Self, Malformed> {
        Self::from_fields(form(body)?.into_iter().collect())
    }

    /// A Socket Mode `slash_commands` envelope's payload (the same fields,
    /// as JSON).
    pub fn parse_json(raw: &str) -> Result<Self, Malformed> {
        let fields: HashMap<String, StringField> =
            serde_json::from_str(raw).map_err(|e| Malformed::PayloadNotJson(e.to_string()))?;
        // Non-string fields (booleans, …) are not the form's: set aside.
        Self::from_fields(
            fields
                .into_iter()
                .filter_map(|(k, v)| match v {
                    StringField::Text(s) => Some((k, s)),
                    StringField::Other(_) => None,
                })
                .collect(),
        )
    }

    /// The form's fields, sorted (so a delivery hashes the same every time).
    fn from_fields(mut f: BTreeMap<String, String>) -> Result<Self, Malformed> {
        let user = f
            .get("user_id")
            .cloned()
            .ok_or(Malformed::CommandWithout("user_id"))?;
        let channel = f
            .get("channel_id")
            .cloned()
            .ok_or(Malformed::CommandWithout("channel_id"))?;
        let text = f.get("text").map(|t| t.trim()).unwrap_or("").to_owned();
        let delivery = match f.get("trigger_id") {
            Some(t) => format!("command-{t}"),
            // Slack sends more (team_domain, command, response_url, …): a
            // command without a trigger id hashes every field.
            None => digest("command", &format!("{f:?}")),
        };
        Ok(SlashCommand {
            origin: Source {
                team: f.remove("team_id"),
                app: f.remove("api_app_id"),
            },
            user,
            channel,
            text,
            delivery,
        })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringField {
    Text(String),
    Other(serde::de::IgnoredAny),
}

fn form(body: &[u8]) -> Result<HashMap<String, String>, Malformed> {
    let text = std::str::from_utf8(body).map_err(|_| Malformed::FormNotUtf8)?;
    if !text.contains('=') {
        return Err(Malformed::NotAForm);
    }
    Ok(url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect())
}

/// A stable key for a payload that carries no id of its own: the same
/// delivery gives the same key.
fn digest(prefix: &str, text: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(text.as_bytes());
    format!("{prefix}-{}", hex::encode(&hash[..16]))
}

// ----- Socket Mode -----------------------------------------------------------

/// A Socket Mode frame: its envelope id (to acknowledge) and its payload,
/// parsed exactly as the same payload over HTTP.
#[derive(Debug)]
pub struct Envelope {
    pub id: Option<String>,
    pub body: EnvelopeBody,
}

#[derive(Debug)]
pub enum EnvelopeBody {
    Hello,
    /// Slack is about to close the connection; Paver reconnects.
    Disconnect,
    Events(Result<EventsPayload, Malformed>),
    Interactive(Result<Interaction, Malformed>),
    SlashCommand(Result<SlashCommand, Malformed>),
    /// An envelope type Paver does not know: acknowledged.
    Other,
}

#[derive(Deserialize)]
struct EnvelopeWire<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    envelope_id: Option<String>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

impl Envelope {
    /// `None`: not an envelope at all (not JSON, or no type).
    pub fn parse(frame: &str) -> Option<Self> {
        let w: EnvelopeWire = match serde_json::from_str(frame) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "Socket Mode frame is not JSON; ignored");
                return None;
            }
        };
        let payload = w.payload.map(RawValue::get).unwrap_or("null");
        let body = match w.kind?.as_str() {
            "hello" => EnvelopeBody::Hello,
            "disconnect" => EnvelopeBody::Disconnect,
            "events_api" => EnvelopeBody::Events(EventsPayload::parse(payload.as_bytes())),
            "interactive" => EnvelopeBody::Interactive(Interaction::parse_json(payload)),
            "slash_commands" => EnvelopeBody::SlashCommand(SlashCommand::parse_json(payload)),
            _ => EnvelopeBody::Other,
        };
        Some(Envelope {
            id: w.envelope_id,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &str = "../shared/corpus/slack";

    fn sample(name: &str) -> String {
        std::fs::read_to_string(format!("{CORPUS}/{name}")).unwrap()
    }

    #[test]
    fn events_api_samples() {
        match EventsPayload::parse(sample("events_url_verification.json").as_bytes()).unwrap() {
            EventsPayload::UrlVerification { challenge } => {
                assert_eq!(
                    challenge,
                    "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
                )
            }
            other => panic!("{other:?}"),
        }
        let EventsPayload::Callback(c) =
            EventsPayload::parse(sample("event_callback_app_mention.json").as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(c.event_id, "Ev04SPP46R6J");
        assert_eq!(c.origin.team.as_deref(), Some("T0G9PQBBK"));
        assert_eq!(c.origin.app.as_deref(), Some("A111"));
        assert_eq!(c.bot_user.as_deref(), Some("U111"));
        let SlackEvent::AppMention(m) = &c.event else {
            panic!("{:?}", c.event)
        };
        assert_eq!(m.user.as_deref(), Some("U222"));
        assert_eq!(m.channel.as_deref(), Some("C111"));
        assert_eq!(m.text.as_deref(), Some("<@U111> hey"));
        assert_eq!(m.ts.as_deref(), Some("1678252212.229129"));
        assert_eq!(m.bot_id, None);

        let EventsPayload::Callback(c) =
            EventsPayload::parse(sample("event_callback_app_mention_http.json").as_bytes())
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(c.bot_user, None, "authed_users only: no authorization");
        assert!(matches!(c.event, SlackEvent::AppMention(_)));

        let EventsPayload::Callback(c) =
            EventsPayload::parse(sample("event_callback_message.json").as_bytes()).unwrap()
        else {
            panic!()
        };
        let SlackEvent::Message(m) = &c.event else {
            panic!()
        };
        assert_eq!(m.channel_type, Some(ChannelType::Channel));
        assert_eq!(m.text.as_deref(), Some("Hello World!"));

        for name in [
            "slack-morphism/message_changed.json",
            "slack-morphism/message_changed_by_bot.json",
        ] {
            let raw = sample(name);
            // These samples are the event itself or its callback.
            let event: SlackEvent = match EventsPayload::parse(raw.as_bytes()) {
                Ok(EventsPayload::Callback(c)) => c.event,
                _ => serde_json::from_str(&raw).unwrap(),
            };
            let SlackEvent::Message(m) = event else {
                panic!("{name}")
            };
            assert_eq!(m.subtype.as_deref(), Some("message_changed"), "{name}");
        }
    }

    #[test]
    fn stored_events_read_back() {
        let EventsPayload::Callback(c) =
            EventsPayload::parse(sample("event_callback_app_mention.json").as_bytes()).unwrap()
        else {
            panic!()
        };
        let json = serde_json::to_string(&c.event).unwrap();
        assert_eq!(serde_json::from_str::<SlackEvent>(&json).unwrap(), c.event);
        // Rows stored before events were typed hold Slack's raw event.
        let raw: serde_json::Value =
            serde_json::from_str(&sample("event_callback_app_mention.json")).unwrap();
        assert_eq!(
            serde_json::from_value::<SlackEvent>(raw["event"].clone()).unwrap(),
            c.event
        );
        let other: SlackEvent =
            serde_json::from_str(r#"{"type": "user_change", "user": {"id": "U1"}}"#).unwrap();
        assert_eq!(other, SlackEvent::Other);
        assert_eq!(
            serde_json::from_str::<SlackEvent>(&serde_json::to_string(&other).unwrap()).unwrap(),
            SlackEvent::Other
        );
    }

    #[test]
    fn interaction_samples() {
        for name in [
            "block_actions_button_minimal.json",
            "block_actions_button_with_message.json",
        ] {
            let i = Interaction::parse_json(&sample(name)).unwrap();
            assert_eq!(i.origin.app.as_deref(), Some("A111"), "{name}");
            let InteractionKind::BlockActions(p) = i.kind else {
                panic!("{name}")
            };
            assert_eq!(p.channel, "C111", "{name}");
            assert_eq!(p.values.len(), 1, "{name}");
        }
        let i = Interaction::parse_json(&sample("block_actions_button_minimal.json")).unwrap();
        assert_eq!(i.origin.team.as_deref(), Some("T111"));
        let InteractionKind::BlockActions(p) = i.kind else {
            panic!()
        };
        assert_eq!(
            (p.user.as_str(), p.values[0].as_str()),
            ("W111", "click_me_123")
        );
        assert_eq!(
            Interaction::parse_json(r#"{"user": {"id": "U1"}}"#),
            Err(Malformed::InteractionWithoutType)
        );
        assert_eq!(
            Interaction::parse_json(
                r#"{"type": "block_actions", "channel": {"id": "C1"}, "actions": []}"#
            ),
            Err(Malformed::BlockActionsWithout("a user"))
        );
        assert!(matches!(
            Interaction::parse_json(r#"{"type": "interactive_message"}"#).unwrap().kind,
            InteractionKind::Other(k) if k == "interactive_message"
        ));
    }

    #[test]
    fn reason_forms_submitted() {
        let submit = |callback: &str, metadata: &str, value: Option<&str>| {
            let mut p = serde_json::json!({
                "type": "view_submission",
                "team": {"id": "T1"},
                "user": {"id": "U1", "team_id": "T1"},
                "view": {"callback_id": callback, "private_metadata": metadata,
                         "state": {"values": {"reason": {"reason": {"type": "plain_text_input"}}}}},
            });
            if let Some(v) = value {
                p["view"]["state"]["values"]["reason"]["reason"]["value"] = v.into();
            }
            Interaction::parse_json(&p.to_string())
        };
        let InteractionKind::ReasonGiven(g) = submit(REASON_VIEW, "deny:r-1:n1", Some(" why \n"))
            .unwrap()
            .kind
        else {
            panic!()
        };
        assert_eq!(
            (g.user.as_str(), g.payload.encode()),
            ("U1", "deny:r-1:n1".into())
        );
        assert_eq!(g.reason.unwrap().as_str(), "why");
        assert!(g.delivery.starts_with("view-"));
        let InteractionKind::ReasonGiven(g) =
            submit(REASON_VIEW, "deny:r-1:n1", None).unwrap().kind
        else {
            panic!()
        };
        assert_eq!(
            g.reason,
            Err(BadReason::Empty),
            "a field left empty has no value"
        );
        assert!(matches!(
            submit(REASON_VIEW, "launch:r-1", Some("x")),
            Err(Malformed::NotAPayload(_))
        ));
        assert_eq!(
            submit("someone_elses", "x", Some("x")).unwrap().kind,
            InteractionKind::Other("view_submission".into())
        );
    }

    #[test]
    fn slash_command_samples() {
        for name in [
            "slash_command_bolt_python.form.txt",
            "slash_command_docs_example.form.txt",
        ] {
            let c = SlashCommand::parse_form(sample(name).trim().as_bytes()).unwrap();
            assert!(c.delivery.starts_with("command-"), "{name}");
            assert!(c.origin.team.is_some(), "{name}");
        }
        let c = SlashCommand::parse_form(
            sample("slash_command_bolt_python.form.txt")
                .trim()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            (c.user.as_str(), c.channel.as_str(), c.text.as_str()),
            ("W111", "C111", "Hi")
        );
        assert_eq!(
            SlashCommand::parse_form(b"text=hi"),
            Err(Malformed::CommandWithout("user_id"))
        );
        assert_eq!(
            SlashCommand::parse_form(b"nothing"),
            Err(Malformed::NotAForm)
        );
        let without_trigger = b"user_id=U1&channel_id=C1&text=x";
        assert_eq!(
            SlashCommand::parse_form(without_trigger).unwrap().delivery,
            SlashCommand::parse_form(without_trigger).unwrap().delivery
        );
    }

    #[test]
    fn socket_mode_samples() {
        let e =
            Envelope::parse(&sample("socket_mode_envelope_events_api_app_mention.json")).unwrap();
        assert_eq!(
            e.id.as_deref(),
            Some("ac2cfd40-6f8c-4d5e-a1ad-646e532baa19")
        );
        let EnvelopeBody::Events(Ok(EventsPayload::Callback(c))) = e.body else {
            panic!("{e:?}")
        };
        assert_eq!(c.bot_user.as_deref(), Some("U333"));
        assert!(matches!(c.event, SlackEvent::Message(_)));

        let e = Envelope::parse(&sample("socket_mode_envelope_interactive_shortcut.json")).unwrap();
        let EnvelopeBody::Interactive(Ok(i)) = e.body else {
            panic!()
        };
        assert_eq!(i.origin.team.as_deref(), Some("T111"));
        assert_eq!(i.kind, InteractionKind::Other("shortcut".into()));

        let e = Envelope::parse(&sample("socket_mode_envelope_slash_commands.json")).unwrap();
        let EnvelopeBody::SlashCommand(Ok(c)) = e.body else {
            panic!()
        };
        assert_eq!(c.origin.app.as_deref(), Some("A111"));
        assert_eq!((c.user.as_str(), c.text.as_str()), ("U111", ""));

        assert!(matches!(
            Envelope::parse(r#"{"type": "hello"}"#).unwrap().body,
            EnvelopeBody::Hello
        ));
        assert!(Envelope::parse("not json").is_none());
        let e =
            Envelope::parse(r#"{"type": "events_api", "envelope_id": "e1", "payload": "junk"}"#)
                .unwrap();
        assert!(matches!(e.body, EnvelopeBody::Events(Err(_))));
    }
}
