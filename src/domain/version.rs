use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A release version as people write it, stored without a leading `v`
/// (`2.3.1`, `1.0.0-rc.1`). Image tags and commit SHAs fit the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Version(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a version (expected something like 1.4.0 or v2.3.1)")]
pub struct VersionError(pub String);

impl Version {
    pub fn parse(value: &str) -> Result<Self, VersionError> {
        let v = value
            .strip_prefix('v')
            .or_else(|| value.strip_prefix('V'))
            .unwrap_or(value);
        let valid = !v.is_empty()
            && v.len() <= 128
            && v.as_bytes()[0].is_ascii_alphanumeric()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'_'));
        if valid {
            Ok(Version(v.to_owned()))
        } else {
            Err(VersionError(value.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Version {
    type Error = VersionError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Version::parse(&value)
    }
}

impl From<Version> for String {
    fn from(value: Version) -> String {
        value.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_leading_v() {
        assert_eq!(Version::parse("v2.3.1").unwrap().as_str(), "2.3.1");
        assert_eq!(Version::parse("1.0.0-rc.1").unwrap().as_str(), "1.0.0-rc.1");
        assert!(Version::parse("v").is_err());
        assert!(Version::parse("1.0 beta").is_err());
        assert!(Version::parse("-1").is_err());
    }
}
