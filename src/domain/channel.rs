//! A channel on a chat platform as configured: `slack:C0123`,
//! `discord:1234…`. Flows that post on their own (deploy notices, nags)
//! are configured with these; each flow may not import another, so the
//! type lives here.

use std::fmt;

use serde::Deserialize;

use super::Platform;

/// A channel on a platform, written `slack:C0123` or `discord:1234…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct ChannelRef {
    pub platform: Platform,
    pub channel: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a channel: write slack:<channel id> or discord:<channel id>")]
pub struct ChannelRefError(String);

impl ChannelRef {
    pub fn parse(text: &str) -> Result<Self, ChannelRefError> {
        let bad = || ChannelRefError(text.to_owned());
        let (platform, channel) = text.trim().split_once(':').ok_or_else(bad)?;
        let platform = match platform.trim().to_ascii_lowercase().as_str() {
            "slack" => Platform::Slack,
            "discord" => Platform::Discord,
            _ => return Err(bad()),
        };
        let channel = channel.trim();
        // Channel ids are short and plain; anything else is a typo (or a
        // channel name, which the APIs do not take).
        let plain = !channel.is_empty()
            && channel.len() <= 40
            && channel.bytes().all(|b| b.is_ascii_alphanumeric());
        if !plain {
            return Err(bad());
        }
        Ok(ChannelRef {
            platform,
            channel: channel.to_owned(),
        })
    }
}

impl TryFrom<String> for ChannelRef {
    type Error = ChannelRefError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ChannelRef::parse(&value)
    }
}

impl fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform.as_str(), self.channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_platform_and_id_and_nothing_else() {
        let c = ChannelRef::parse("slack:C0PLATFORM").unwrap();
        assert_eq!(
            (c.platform, c.channel.as_str()),
            (Platform::Slack, "C0PLATFORM")
        );
        assert_eq!(c.to_string(), "slack:C0PLATFORM");
        assert_eq!(
            ChannelRef::parse(" discord:1234567890 ").unwrap().platform,
            Platform::Discord
        );
        for bad in [
            "C0PLATFORM",
            "teams:C1",
            "slack:",
            "slack:#team-platform",
            "slack:C1 C2",
        ] {
            assert!(ChannelRef::parse(bad).is_err(), "{bad}");
        }
    }
}
