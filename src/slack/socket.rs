//! Socket Mode: the same handlers as HTTP, over a WebSocket that Paver
//! opens to Slack (no public URL needed). An envelope is acknowledged once
//! its event is stored; one that cannot be stored is left unacknowledged,
//! and Slack sends it again.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::inbound::{
    handle_command, handle_event_payload, handle_interaction, BadPayload, SlackState,
};

/// Connects, serves until Slack asks to reconnect or the socket drops, and
/// reconnects with backoff, forever.
pub async fn run(state: SlackState, app_token: SecretString) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match connect_once(&state, &app_token).await {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "Slack Socket Mode connection failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

async fn connect_once(state: &SlackState, app_token: &SecretString) -> Result<(), String> {
    let url = state
        .api
        .open_socket_url(app_token)
        .await
        .map_err(|e| format!("apps.connections.open: {e}"))?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    tracing::info!("Slack Socket Mode connected");
    while let Some(frame) = ws.next().await {
        let frame = frame.map_err(|e| format!("reading: {e}"))?;
        let text = match frame {
            WsMessage::Text(t) => t.to_string(),
            WsMessage::Ping(p) => {
                ws.send(WsMessage::Pong(p))
                    .await
                    .map_err(|e| format!("pong: {e}"))?;
                continue;
            }
            WsMessage::Close(_) => return Ok(()),
            _ => continue,
        };
        let envelope: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "Socket Mode frame is not JSON; ignored");
                continue;
            }
        };
        if let Some(ack) = handle_envelope(state, &envelope).await {
            ws.send(WsMessage::Text(ack.to_string().into()))
                .await
                .map_err(|e| format!("acknowledging: {e}"))?;
        }
        if envelope.get("type").and_then(Value::as_str) == Some("disconnect") {
            return Ok(());
        }
    }
    Ok(())
}

/// One envelope in, its acknowledgement out (None for hello/disconnect).
pub async fn handle_envelope(state: &SlackState, envelope: &Value) -> Option<Value> {
    let kind = envelope.get("type").and_then(Value::as_str)?;
    let id = envelope.get("envelope_id").and_then(Value::as_str)?;
    let payload = envelope.get("payload").cloned().unwrap_or(Value::Null);
    match kind {
        "events_api" => match handle_event_payload(state, payload).await {
            // Unacknowledged, Slack sends the envelope again.
            Err(BadPayload::Busy(_) | BadPayload::Unavailable) => None,
            Err(e) => {
                tracing::info!(error = %e, "Socket Mode event refused");
                Some(json!({"envelope_id": id}))
            }
            Ok(_) => Some(json!({"envelope_id": id})),
        },
        "interactive" => match handle_interaction(state, payload).await {
            Err(BadPayload::Busy(_) | BadPayload::Unavailable) => None,
            Err(e) => {
                tracing::info!(error = %e, "Socket Mode interaction refused");
                Some(json!({"envelope_id": id}))
            }
            Ok(()) => Some(json!({"envelope_id": id})),
        },
        "slash_commands" => {
            let fields: HashMap<String, String> = payload
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            match handle_command(state, &fields).await {
                Ok(Value::Null) => Some(json!({"envelope_id": id})),
                Ok(reply) => Some(json!({"envelope_id": id, "payload": reply})),
                Err(BadPayload::Busy(_) | BadPayload::Unavailable) => None,
                Err(e) => {
                    tracing::info!(error = %e, "Socket Mode command refused");
                    Some(json!({"envelope_id": id}))
                }
            }
        }
        _ => Some(json!({"envelope_id": id})),
    }
}
