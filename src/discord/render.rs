//! The chat model as a Discord message: cards become an embed with action
//! rows of buttons, notices plain content. Everything is cut to Discord's
//! limits, and nothing Paver sends can ping anyone.

use serde_json::{json, Map, Value};

use crate::chat::{ButtonStyle, Message, Tone};

pub const CONTENT_MAX: usize = 2000;
pub const TITLE_MAX: usize = 256;
pub const DESCRIPTION_MAX: usize = 4096;
pub const FIELDS_MAX: usize = 25;
pub const FIELD_NAME_MAX: usize = 256;
pub const FIELD_VALUE_MAX: usize = 1024;
pub const FOOTER_MAX: usize = 2048;
/// Title, description, field names and values and footer together.
pub const EMBED_TOTAL_MAX: usize = 6000;
pub const ROWS_MAX: usize = 5;
pub const BUTTONS_PER_ROW: usize = 5;
pub const LABEL_MAX: usize = 80;
pub const CUSTOM_ID_MAX: usize = 100;
pub const THREAD_NAME_MAX: usize = 100;

/// The `flags` bit of a message only its recipient sees.
pub const EPHEMERAL: u64 = 1 << 6;

/// Mentions in anything Paver sends are shown, never pinged: no
/// @everyone, @here, roles, users, nor the author of a replied-to message.
pub fn no_mentions() -> Value {
    json!({ "parse": [], "replied_user": false })
}

/// Length as Discord counts it (UTF-16 code units, as in JavaScript).
pub fn discord_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Cuts `s` to at most `max` Discord characters, marking a cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if discord_len(s) <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() > max.saturating_sub(1) {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    out.push('…');
    out
}

/// Defuses mass mentions in text shown back (allowed_mentions already
/// stops the ping; this stops the text looking like one).
pub fn defuse(s: &str) -> String {
    s.replace("@everyone", "@\u{200B}everyone")
        .replace("@here", "@\u{200B}here")
}

/// Escapes Discord markdown and mention syntax, for echoing what a user wrote.
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '#' | '[' | ']'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    defuse(&out)
}

fn color(tone: Tone) -> u32 {
    match tone {
        Tone::Info => 0x5865F2,
        Tone::Success => 0x57F287,
        Tone::Warning => 0xFEE75C,
        Tone::Danger => 0xED4245,
    }
}

fn mark(tone: Tone) -> &'static str {
    match tone {
        Tone::Info => "",
        Tone::Success => "✅ ",
        Tone::Warning => "⚠️ ",
        Tone::Danger => "❌ ",
    }
}

/// A non-empty field part (Discord rejects empty names and values).
fn part(s: &str, max: usize) -> String {
    let s = defuse(s.trim());
    if s.is_empty() {
        "\u{200B}".to_owned()
    } else {
        truncate(&s, max)
    }
}

fn embed(message: &Message) -> Map<String, Value> {
    let mut e = Map::new();
    let mut total = 0;
    if let Some(t) = &message.title {
        let t = truncate(&defuse(&format!("{}{t}", mark(message.tone))), TITLE_MAX);
        total += discord_len(&t);
        e.insert("title".into(), Value::String(t));
    }
    e.insert("color".into(), json!(color(message.tone)));
    // Discord has no confirmation dialog for buttons: say it on the card,
    // next to the button that needs it.
    let mut description = message.text.clone();
    for b in &message.buttons {
        if let Some(q) = &b.confirm {
            if !description.is_empty() {
                description.push_str("\n\n");
            }
            description.push_str(&format!("⚠️ **{}**: {q}", b.label));
        }
    }
    let footer = message
        .context
        .as_deref()
        .map(|c| truncate(&defuse(c), FOOTER_MAX));
    total += footer.as_deref().map_or(0, discord_len);
    let mut fields = Vec::new();
    for (k, v) in message.fields.iter().take(FIELDS_MAX) {
        let name = part(k, FIELD_NAME_MAX);
        let value = part(v, FIELD_VALUE_MAX);
        let len = discord_len(&name) + discord_len(&value);
        if total + len > EMBED_TOTAL_MAX {
            tracing::warn!(
                "a card has more fields than a Discord embed holds; the rest are left out"
            );
            break;
        }
        total += len;
        let inline = discord_len(v) <= 40 && discord_len(k) <= 40;
        fields.push(json!({ "name": name, "value": value, "inline": inline }));
    }
    if !description.trim().is_empty() {
        let room = EMBED_TOTAL_MAX.saturating_sub(total).min(DESCRIPTION_MAX);
        if room > 1 {
            e.insert(
                "description".into(),
                Value::String(truncate(&defuse(&description), room)),
            );
        }
    }
    if !fields.is_empty() {
        e.insert("fields".into(), Value::Array(fields));
    }
    if let Some(f) = footer {
        e.insert("footer".into(), json!({ "text": f }));
    }
    e
}

/// Buttons as action rows: 5 to a row, at most 5 rows. A button whose
/// payload does not fit a `custom_id` is left out (and logged), never cut.
pub fn components(message: &Message) -> Vec<Value> {
    let buttons: Vec<Value> = message
        .buttons
        .iter()
        .filter(|b| {
            let ok = !b.payload.is_empty() && discord_len(&b.payload) <= CUSTOM_ID_MAX;
            if !ok {
                tracing::warn!(label = %b.label, "button payload does not fit a Discord custom_id; button left out");
            }
            ok
        })
        .take(ROWS_MAX * BUTTONS_PER_ROW)
        .map(|b| {
            let style = match b.style {
                ButtonStyle::Primary => 1,
                ButtonStyle::Default => 2,
                ButtonStyle::Danger => 4,
            };
            json!({
                "type": 2,
                "style": style,
                "label": truncate(&defuse(&b.label), LABEL_MAX),
                "custom_id": b.payload,
            })
        })
        .collect();
    buttons
        .chunks(BUTTONS_PER_ROW)
        .map(|row| json!({ "type": 1, "components": row }))
        .collect()
}

/// The JSON body of a create-message or edit-message call. Every key is
/// always present, so an edit replaces the whole message (buttons that
/// no longer apply disappear).
pub fn message_body(message: &Message) -> Value {
    let is_card = message.title.is_some();
    let mut content = String::new();
    let mut embeds = Vec::new();
    if is_card {
        embeds.push(Value::Object(embed(message)));
    } else {
        if !message.text.is_empty() {
            content = truncate(
                &defuse(&format!("{}{}", mark(message.tone), message.text)),
                CONTENT_MAX,
            );
        }
        if !message.fields.is_empty() || message.context.is_some() {
            let plain = Message {
                text: String::new(),
                ..message.clone()
            };
            embeds.push(Value::Object(embed(&plain)));
        }
    }
    // A mention in an embed never pings: the people a card asks are named
    // in the content too, and allowed by id (and nobody else).
    let mut allowed = no_mentions();
    if !message.mentions.is_empty() {
        if is_card {
            content = message
                .mentions
                .iter()
                .map(|id| format!("<@{id}>"))
                .collect::<Vec<_>>()
                .join(" ");
        }
        allowed["users"] = json!(message.mentions.iter().take(100).collect::<Vec<_>>());
    }
    if content.is_empty() && embeds.is_empty() {
        content = "\u{200B}".into();
    }
    json!({
        "content": content,
        "embeds": embeds,
        "components": components(message),
        "allowed_mentions": allowed,
    })
}

/// A thread name from a card title.
pub fn thread_name(title: &str) -> String {
    let name = defuse(title.trim());
    if name.is_empty() {
        "Paver request".into()
    } else {
        truncate(&name, THREAD_NAME_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Button, ButtonOp, ButtonPayload};

    fn button(i: usize) -> Button {
        Button {
            label: format!("Button {i}"),
            style: ButtonStyle::Default,
            payload: ButtonPayload {
                op: ButtonOp::Confirm,
                request_id: format!("r-{i}"),
                nonce: "n".into(),
            }
            .encode(),
            confirm: None,
        }
    }

    #[test]
    fn cards_are_embeds_with_buttons_in_rows() {
        let m = Message {
            title: Some("Create staging for order-service".into()),
            fields: vec![("Service".into(), "order-service".into())],
            context: Some("Request r-1".into()),
            buttons: vec![
                Button {
                    style: ButtonStyle::Primary,
                    ..button(1)
                },
                Button {
                    style: ButtonStyle::Danger,
                    confirm: Some("Really?".into()),
                    ..button(2)
                },
            ],
            tone: Tone::Warning,
            ..Message::default()
        };
        let body = message_body(&m);
        let e = &body["embeds"][0];
        assert_eq!(e["title"], "⚠️ Create staging for order-service");
        assert_eq!(e["fields"][0]["name"], "Service");
        assert_eq!(e["fields"][0]["value"], "order-service");
        assert_eq!(e["footer"]["text"], "Request r-1");
        assert!(e["description"].as_str().unwrap().contains("Really?"));
        assert_eq!(body["content"], "");
        let row = &body["components"][0];
        assert_eq!(row["type"], 1);
        assert_eq!(row["components"][0]["style"], 1);
        assert_eq!(row["components"][1]["style"], 4);
        assert_eq!(row["components"][0]["custom_id"], "confirm:r-1:n");
        assert_eq!(body["allowed_mentions"]["parse"], json!([]));
        assert_eq!(body["allowed_mentions"]["replied_user"], false);
    }

    #[test]
    fn buttons_fit_five_rows_of_five_and_long_payloads_are_dropped() {
        let mut buttons: Vec<Button> = (0..30).map(button).collect();
        buttons[3].payload = "x".repeat(CUSTOM_ID_MAX + 1);
        buttons[4].label = "L".repeat(200);
        let m = Message {
            title: Some("t".into()),
            buttons,
            ..Message::default()
        };
        let rows = components(&m);
        assert_eq!(rows.len(), ROWS_MAX);
        let mut seen = 0;
        for row in &rows {
            let b = row["components"].as_array().unwrap();
            assert!(b.len() <= BUTTONS_PER_ROW);
            for b in b {
                let id = b["custom_id"].as_str().unwrap();
                assert!(!id.is_empty() && id.len() <= CUSTOM_ID_MAX);
                assert!(discord_len(b["label"].as_str().unwrap()) <= LABEL_MAX);
                seen += 1;
            }
        }
        assert_eq!(seen, 25);
        assert!(!rows
            .iter()
            .any(|r| r.to_string().contains(&"x".repeat(CUSTOM_ID_MAX + 1))));
    }

    #[test]
    fn embeds_stay_within_discords_limits() {
        let m = Message {
            title: Some("T".repeat(1000)),
            text: "d".repeat(10_000),
            fields: (0..40)
                .map(|i| (format!("{i}{}", "k".repeat(300)), "v".repeat(2000)))
                .chain([(String::new(), String::new())])
                .collect(),
            context: Some("c".repeat(3000)),
            ..Message::default()
        };
        let body = message_body(&m);
        let e = &body["embeds"][0];
        let len = |v: &Value| v.as_str().map_or(0, discord_len);
        assert!(len(&e["title"]) <= TITLE_MAX);
        assert!(len(&e["description"]) <= DESCRIPTION_MAX);
        assert!(len(&e["footer"]["text"]) <= FOOTER_MAX);
        let fields = e["fields"].as_array().unwrap();
        assert!(fields.len() <= FIELDS_MAX);
        let mut total = len(&e["title"]) + len(&e["description"]) + len(&e["footer"]["text"]);
        for f in fields {
            assert!(len(&f["name"]) <= FIELD_NAME_MAX && len(&f["name"]) > 0);
            assert!(len(&f["value"]) <= FIELD_VALUE_MAX && len(&f["value"]) > 0);
            total += len(&f["name"]) + len(&f["value"]);
        }
        assert!(total <= EMBED_TOTAL_MAX, "{total}");
        // Plain notices are cut to the content limit, counting like Discord.
        let long = Message {
            text: "😀".repeat(1500),
            ..Message::default()
        };
        let c = message_body(&long)["content"].as_str().unwrap().to_owned();
        assert!(discord_len(&c) <= CONTENT_MAX);
        assert!(c.ends_with('…'));
    }

    #[test]
    fn nothing_sent_can_ping_and_echoes_are_escaped() {
        let m = Message {
            text: "hi @everyone and @here".into(),
            ..Message::default()
        };
        let body = message_body(&m);
        let c = body["content"].as_str().unwrap();
        assert!(!c.contains("@everyone") && !c.contains("@here"));
        assert_eq!(body["allowed_mentions"]["parse"], json!([]));
        let e = escape_markdown("<@&123> **bold** `x` @everyone");
        assert_eq!(e, "\\<@&123\\> \\*\\*bold\\*\\* \\`x\\` @\u{200B}everyone");
        assert_eq!(
            thread_name(&"n".repeat(300)).chars().count(),
            THREAD_NAME_MAX
        );
        assert_eq!(thread_name(" "), "Paver request");
    }

    #[test]
    fn notices_with_fields_get_a_small_embed() {
        let m = Message {
            text: "Done".into(),
            fields: vec![("Logs".into(), "https://logs".into())],
            tone: Tone::Success,
            ..Message::default()
        };
        let body = message_body(&m);
        assert_eq!(body["content"], "✅ Done");
        assert_eq!(body["embeds"][0]["fields"][0]["value"], "https://logs");
        assert!(body["embeds"][0].get("title").is_none());
        assert_eq!(body["components"], json!([]));
        // Never an empty message.
        assert_eq!(message_body(&Message::default())["content"], "\u{200B}");
    }
}
