//! The chat platforms Paver speaks, as stored and configured.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The chat platforms Paver speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Console,
    Slack,
    Discord,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Console => "console",
            Platform::Slack => "slack",
            Platform::Discord => "discord",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Platform::Console, Platform::Slack, Platform::Discord]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
