//! `paver discord register-commands`: the `/paver request:<text>` slash
//! command, globally or in one server (guild commands appear at once;
//! global ones may take a while to reach every client).

use serde_json::{json, Value};

use super::api::SetupError;
use super::interactions::{COMMAND, OPTION};
use crate::config::Config;

/// The command as Discord's API takes it (names and descriptions within
/// Discord's 32 and 100 character limits).
pub fn definition() -> Value {
    json!({
        "name": COMMAND,
        "type": 1,
        "description": "Ask Paver for a platform change, a status, an owner or help",
        "options": [{
            "type": 3,
            "name": OPTION,
            "description": "What you need, in plain words: create staging for order-service with postgres",
            "required": true,
            "max_length": 2000
        }],
        // Servers and DMs with the bot; installed to servers.
        "contexts": [0, 1],
        "integration_types": [0]
    })
}

/// Creates (or replaces) the command; returns its id.
pub async fn register(config: &Config, guild: Option<&str>) -> Result<String, SetupError> {
    let api = super::api(config)?.ok_or(SetupError::NoToken)?;
    if api.application_id().is_none() {
        return Err(SetupError::NoApplicationId);
    }
    api.create_command(guild, &definition())
        .await
        .map(|c| c.id)
        .map_err(|source| SetupError::Register {
            command: COMMAND,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_within_discords_limits() {
        let d = definition();
        let len = |v: &Value| v.as_str().unwrap().chars().count();
        assert!(len(&d["name"]) <= 32);
        assert!(len(&d["description"]) <= 100);
        let o = &d["options"][0];
        assert!(len(&o["name"]) <= 32);
        assert!(len(&o["description"]) <= 100);
        assert_eq!(o["name"], OPTION);
    }
}
