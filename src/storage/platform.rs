//! The chat platform as the database spells it (`platform` columns): rows
//! carry [`Platform`], and a value the code does not know is an error when
//! the row is read, not a panic later.

use crate::domain::Platform;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform `{0}` in the database")]
pub struct UnknownPlatform(pub String);

impl TryFrom<String> for Platform {
    type Error = UnknownPlatform;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Platform::parse(&s).ok_or(UnknownPlatform(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_reads_back_and_strangers_are_errors() {
        for p in [Platform::Console, Platform::Slack, Platform::Discord] {
            assert_eq!(Platform::try_from(p.as_str().to_owned()), Ok(p));
        }
        assert_eq!(
            Platform::try_from("irc".to_owned()),
            Err(UnknownPlatform("irc".into()))
        );
    }
}
