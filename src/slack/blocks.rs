//! The chat model rendered as Block Kit, within Slack's limits.

use serde_json::{json, Value};

use crate::chat::{ButtonPayload, ButtonStyle, Message, ReasonAsk, Tone, REASON_FIELD};
use crate::domain::Reason;

use super::wire::REASON_VIEW;

/// Slack's limits (https://api.slack.com/reference/block-kit).
pub const MAX_BLOCKS: usize = 50;
pub const MAX_TEXT: usize = 3000;
pub const MAX_HEADER: usize = 150;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_BUTTON_LABEL: usize = 75;
pub const MAX_ACTION_ID: usize = 255;
pub const MAX_BUTTON_VALUE: usize = 2000;
pub const MAX_BUTTONS: usize = 25;

/// Escapes text for mrkdwn so user words cannot become `<!channel>`, a
/// mention or a disguised link. Channel references Paver itself writes
/// (`<#C0123>`) are kept.
pub fn escape(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    restore_channel_refs(&escaped)
}

/// [`escape`], keeping the mentions of `users` (ids Paver itself
/// mentions, see [`Message::mentions`]) as mentions.
pub fn escape_mentioning(text: &str, users: &[String]) -> String {
    let mut out = escape(text);
    for id in users {
        out = out.replace(&format!("&lt;@{id}&gt;"), &format!("<@{id}>"));
    }
    out
}

fn restore_channel_refs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("&lt;#") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 5..];
        let id_len = after
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            .count();
        if id_len > 0 && after[id_len..].starts_with("&gt;") {
            out.push_str("<#");
            out.push_str(&after[..id_len]);
            out.push('>');
            rest = &after[id_len + 4..];
        } else {
            out.push_str("&lt;#");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Cuts at a character boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn mrkdwn(text: &str, max: usize) -> Value {
    json!({"type": "mrkdwn", "text": truncate(&escape(text), max)})
}

/// The plain-text fallback Slack shows in notifications.
pub fn fallback(message: &Message) -> String {
    let base = match &message.title {
        Some(t) => t.clone(),
        None => message.text.lines().next().unwrap_or("").to_owned(),
    };
    truncate(&escape_mentioning(&base, &message.mentions), MAX_TEXT)
}

pub fn render(message: &Message) -> Vec<Value> {
    let mut blocks = Vec::new();
    let icon = match message.tone {
        Tone::Info => "",
        Tone::Success => "✅ ",
        Tone::Warning => "⚠️ ",
        Tone::Danger => "⛔ ",
    };
    if let Some(title) = &message.title {
        blocks.push(json!({
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(&format!("{icon}{title}"), MAX_HEADER), "emoji": true}
        }));
    }
    if !message.text.is_empty() {
        let text = if message.title.is_none() {
            format!("{icon}{}", message.text)
        } else {
            message.text.clone()
        };
        let text = truncate(&escape_mentioning(&text, &message.mentions), MAX_TEXT);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    for chunk in message.fields.chunks(MAX_FIELDS) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|(k, v)| mrkdwn(&format!("*{k}*\n{v}"), MAX_FIELD_TEXT))
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if let Some(c) = &message.context {
        blocks.push(json!({"type": "context", "elements": [mrkdwn(c, MAX_FIELD_TEXT)]}));
    }
    if !message.buttons.is_empty() {
        let elements: Vec<Value> = message
            .buttons
            .iter()
            .take(MAX_BUTTONS)
            .enumerate()
            .map(|(i, b)| {
                let op = b.payload.split(':').next().unwrap_or("press");
                let mut button = json!({
                    "type": "button",
                    "text": {"type": "plain_text", "text": truncate(&b.label, MAX_BUTTON_LABEL)},
                    "action_id": truncate(&format!("paver.{op}.{i}"), MAX_ACTION_ID),
                    "value": truncate(&b.payload, MAX_BUTTON_VALUE),
                });
                match b.style {
                    ButtonStyle::Primary => button["style"] = json!("primary"),
                    ButtonStyle::Danger => button["style"] = json!("danger"),
                    ButtonStyle::Default => {}
                }
                if let Some(q) = &b.confirm {
                    button["confirm"] = json!({
                        "title": {"type": "plain_text", "text": "Are you sure?"},
                        "text": {"type": "plain_text", "text": truncate(q, 300)},
                        "confirm": {"type": "plain_text", "text": truncate(&b.label, 30)},
                        "deny": {"type": "plain_text", "text": "Keep it"},
                        "style": "danger",
                    });
                }
                button
            })
            .collect();
        blocks.push(json!({"type": "actions", "block_id": "paver_actions", "elements": elements}));
    }
    if blocks.len() > MAX_BLOCKS {
        // Keep the head and the buttons; say that something was left out.
        let actions = blocks.pop();
        blocks.truncate(MAX_BLOCKS - 2);
        blocks.push(json!({"type": "context", "elements": [mrkdwn("(more left out)", 100)]}));
        blocks.extend(actions);
    }
    blocks
}

/// The modal a press of a button that needs a reason opens (views.open):
/// one required multi-line field. Its `private_metadata` is the pressed
/// button's payload and nothing else, so the submission is checked as the
/// press would have been, against the request as stored then.
pub fn reason_modal(payload: &ButtonPayload, ask: ReasonAsk) -> Value {
    json!({
        "type": "modal",
        "callback_id": REASON_VIEW,
        "private_metadata": payload.encode(),
        "title": {"type": "plain_text", "text": truncate(ask.title, 24)},
        "submit": {"type": "plain_text", "text": truncate(ask.submit, 24)},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{
            "type": "input",
            "block_id": REASON_FIELD,
            "label": {"type": "plain_text", "text": ask.label},
            "element": {
                "type": "plain_text_input",
                "action_id": REASON_FIELD,
                "multiline": true,
                "max_length": Reason::MAX_CHARS,
                "placeholder": {"type": "plain_text", "text": ask.placeholder},
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Button;

    #[test]
    fn user_text_cannot_ping_or_disguise_links() {
        assert_eq!(escape("<!channel> hi"), "&lt;!channel&gt; hi");
        assert_eq!(
            escape("<https://evil|docs> & <@U1>"),
            "&lt;https://evil|docs&gt; &amp; &lt;@U1&gt;"
        );
        assert_eq!(escape("ask in <#C0PLATFORM>"), "ask in <#C0PLATFORM>");
        assert_eq!(escape("<#c0lower> <#C1"), "&lt;#c0lower&gt; &lt;#C1");
        let asked = vec!["U0GRACE".to_owned()];
        assert_eq!(
            escape_mentioning("<@U0GRACE> or <@U0EVIL>", &asked),
            "<@U0GRACE> or &lt;@U0EVIL&gt;"
        );
    }

    #[test]
    fn cards_stay_within_limits() {
        let m = Message {
            title: Some("x".repeat(400)),
            text: "y".repeat(5000),
            fields: (0..30)
                .map(|i| (format!("k{i}"), "v".repeat(3000)))
                .collect(),
            context: Some("c".into()),
            buttons: vec![Button {
                label: "L".repeat(100),
                style: ButtonStyle::Danger,
                payload: "confirm:r-1:n".into(),
                confirm: Some("sure?".into()),
            }],
            tone: Tone::Warning,
            mentions: Vec::new(),
        };
        let blocks = render(&m);
        assert!(blocks.len() <= MAX_BLOCKS);
        assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= MAX_HEADER);
        assert!(blocks[1]["text"]["text"].as_str().unwrap().chars().count() <= MAX_TEXT);
        let sections: Vec<&Value> = blocks
            .iter()
            .filter(|b| b.get("fields").is_some())
            .collect();
        assert_eq!(sections.len(), 3);
        for s in sections {
            let f = s["fields"].as_array().unwrap();
            assert!(f.len() <= MAX_FIELDS);
            assert!(f
                .iter()
                .all(|x| x["text"].as_str().unwrap().chars().count() <= MAX_FIELD_TEXT));
        }
        let actions = blocks.last().unwrap();
        let b = &actions["elements"][0];
        assert_eq!(b["value"], "confirm:r-1:n");
        assert_eq!(b["style"], "danger");
        assert!(b["confirm"].is_object());
        assert!(b["text"]["text"].as_str().unwrap().chars().count() <= MAX_BUTTON_LABEL);
        // Block Kit JSON is what slack-morphism's typed blocks accept.
        let typed: Vec<slack_morphism::prelude::SlackBlock> =
            serde_json::from_value(Value::Array(blocks)).unwrap();
        assert!(!typed.is_empty());
    }
}
