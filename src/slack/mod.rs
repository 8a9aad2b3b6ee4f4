//! Slack: the Events API, interactivity and slash commands over HTTP or
//! Socket Mode, Block Kit cards, and one Web API client for sending.

pub mod api;
pub mod blocks;
pub mod inbound;
pub mod socket;
pub mod verify;
pub mod wire;

use std::sync::Arc;

use crate::app::App;
use crate::config::Config;
pub use api::SlackApi;
pub use inbound::{routes, SlackState};

/// The Web API client, when a bot token is configured.
pub fn api(config: &Config) -> Result<Option<Arc<SlackApi>>, api::SlackSetupError> {
    match &config.slack.bot_token {
        Some(token) => Ok(Some(Arc::new(SlackApi::new(&config.slack.api_url, token)?))),
        None => Ok(None),
    }
}

/// The adapter's state, with its background work started (learning the
/// workspace, recovering stored events).
pub fn state(app: &App, config: &Config, api: Arc<SlackApi>) -> SlackState {
    let state = SlackState::new(app.engine.clone(), app.catalog.clone(), api, &config.slack);
    state.start();
    state
}
