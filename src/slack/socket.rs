//! Socket Mode: the same handlers as HTTP, over a WebSocket that Paver
//! opens to Slack (no public URL needed). Each frame goes through the same
//! typed parse as HTTP ([`super::wire`]). An envelope is acknowledged once
//! its event is stored; one that cannot be stored is left unacknowledged,
//! and Slack sends it again.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use secrecy::SecretString;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::inbound::{
    handle_command, handle_event_payload, handle_interaction, BadPayload, CommandReply, SlackState,
    ViewErrors,
};
use super::wire::{Envelope, EnvelopeBody};
use crate::util::Backoff;

/// Between failed connections: from 1 s, doubling, up to a minute.
const RECONNECT: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));

/// Why a Socket Mode connection ended other than by Slack closing it.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("apps.connections.open: {0}")]
    Open(#[source] crate::chat::SendError),
    #[error("{0}: {1}")]
    Socket(
        &'static str,
        #[source] tokio_tungstenite::tungstenite::Error,
    ),
}

/// What Paver sends back for an envelope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ack {
    pub envelope_id: String,
    /// A slash command's immediate answer, or a refused form's errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<AckPayload>,
}

/// What an acknowledgement may carry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AckPayload {
    Command(CommandReply),
    View(ViewErrors),
}

/// Connects, serves until Slack asks to reconnect or the socket drops, and
/// reconnects with backoff, forever.
pub async fn run(
    state: SlackState,
    app_token: SecretString,
    ready: crate::util::readiness::Component,
) {
    let mut delays = RECONNECT.delays();
    loop {
        let outcome = connect_once(&state, &app_token, &ready).await;
        ready.down();
        match outcome {
            // A connection that served until Slack closed it starts over.
            Ok(()) => delays = RECONNECT.delays(),
            Err(e) => {
                let backoff = delays.next().unwrap_or(RECONNECT.max);
                tracing::warn!(error = %e, retry_in = ?backoff, "Slack Socket Mode connection failed");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

async fn connect_once(
    state: &SlackState,
    app_token: &SecretString,
    ready: &crate::util::readiness::Component,
) -> Result<(), SocketError> {
    let url = state
        .api
        .open_socket_url(app_token)
        .await
        .map_err(SocketError::Open)?;
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| SocketError::Socket("connecting", e))?;
    tracing::info!("Slack Socket Mode connected");
    ready.up();
    while let Some(frame) = ws.next().await {
        let frame = frame.map_err(|e| SocketError::Socket("reading", e))?;
        let text = match frame {
            WsMessage::Text(t) => t,
            WsMessage::Ping(p) => {
                ws.send(WsMessage::Pong(p))
                    .await
                    .map_err(|e| SocketError::Socket("pong", e))?;
                continue;
            }
            WsMessage::Close(_) => return Ok(()),
            _ => continue,
        };
        let Some(envelope) = Envelope::parse(text.as_str()) else {
            continue;
        };
        let disconnect = matches!(envelope.body, EnvelopeBody::Disconnect);
        if let Some(ack) = answer(state, envelope).await {
            let ack = serde_json::to_string(&ack).expect("acknowledgements serialize");
            ws.send(WsMessage::Text(ack.into()))
                .await
                .map_err(|e| SocketError::Socket("acknowledging", e))?;
        }
        if disconnect {
            return Ok(());
        }
    }
    Ok(())
}

/// One frame in, its acknowledgement out (None for hello/disconnect, and
/// for an envelope left unacknowledged so that Slack sends it again).
pub async fn handle_envelope(state: &SlackState, frame: &str) -> Option<Ack> {
    answer(state, Envelope::parse(frame)?).await
}

async fn answer(state: &SlackState, envelope: Envelope) -> Option<Ack> {
    let envelope_id = envelope.id?;
    // Unacknowledged, Slack sends the envelope again; anything else that
    // went wrong is said in the log and acknowledged.
    let acknowledged = |what: &str, result: Result<Option<AckPayload>, BadPayload>| match result {
        Ok(reply) => Some(reply),
        Err(BadPayload::Busy(_) | BadPayload::Unavailable) => None,
        Err(e) => {
            tracing::info!(error = %e, "Socket Mode {what} refused");
            Some(None)
        }
    };
    let payload = match envelope.body {
        EnvelopeBody::Hello | EnvelopeBody::Disconnect => return None,
        EnvelopeBody::Events(payload) => {
            let result = match payload {
                Ok(p) => handle_event_payload(state, p).await.map(|_| None),
                Err(e) => Err(e.into()),
            };
            acknowledged("event", result)?
        }
        EnvelopeBody::Interactive(payload) => {
            let result = match payload {
                Ok(p) => handle_interaction(state, p)
                    .await
                    .map(|e| e.map(AckPayload::View)),
                Err(e) => Err(e.into()),
            };
            acknowledged("interaction", result)?
        }
        EnvelopeBody::SlashCommand(payload) => {
            let result = match payload {
                Ok(c) => handle_command(state, c)
                    .await
                    .map(|r| r.map(AckPayload::Command)),
                Err(e) => Err(e.into()),
            };
            acknowledged("command", result)?
        }
        EnvelopeBody::Other => None,
    };
    Some(Ack {
        envelope_id,
        payload,
    })
}
