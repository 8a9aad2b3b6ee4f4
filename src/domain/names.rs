use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} `{value}` is longer than {max} characters")]
    TooLong {
        what: &'static str,
        value: String,
        max: usize,
    },
    #[error("{what} `{value}` must be lowercase letters, digits and single hyphens, starting with a letter")]
    BadCharacters { what: &'static str, value: String },
    #[error("unknown environment `{0}` (expected dev, staging, production or preview)")]
    UnknownEnvironment(String),
}

/// Backstage entity names are at most 63 characters; we hold every name to
/// the stricter DNS-label shape because names end up in hostnames, Git paths
/// and Kubernetes objects.
fn check_label(what: &'static str, value: &str) -> Result<(), NameError> {
    const MAX: usize = 63;
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > MAX {
        return Err(NameError::TooLong {
            what,
            value: value.to_owned(),
            max: MAX,
        });
    }
    let bytes = value.as_bytes();
    let ok_chars = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let ok_shape =
        bytes[0].is_ascii_lowercase() && bytes[bytes.len() - 1] != b'-' && !value.contains("--");
    if ok_chars && ok_shape {
        Ok(())
    } else {
        Err(NameError::BadCharacters {
            what,
            value: value.to_owned(),
        })
    }
}

macro_rules! label_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                check_label($what, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

label_newtype!(
    /// A catalog component name (`order-service`), or the name of a new one.
    ServiceName,
    "service name"
);
label_newtype!(
    /// A catalog group name (`team-commerce`).
    TeamName,
    "team name"
);
label_newtype!(
    /// A catalog template name (`go-service`).
    TemplateName,
    "template name"
);
label_newtype!(
    /// A catalog user name (`alice`).
    UserName,
    "user name"
);

/// The environments of the golden path. Anything else is not an environment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Dev,
    Staging,
    Production,
    Preview,
}

impl Environment {
    pub const ALL: [Environment; 4] = [
        Environment::Dev,
        Environment::Staging,
        Environment::Production,
        Environment::Preview,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Staging => "staging",
            Environment::Production => "production",
            Environment::Preview => "preview",
        }
    }

    /// Parses the canonical name or any synonym people use for it.
    pub fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "dev" | "development" | "develop" => Environment::Dev,
            "staging" | "stg" | "stage" | "test" | "qa" | "uat" => Environment::Staging,
            "production" | "prod" | "prd" | "live" => Environment::Production,
            "preview" | "ephemeral" | "temporary" | "temp" => Environment::Preview,
            _ => return None,
        })
    }

    /// The promotion path is dev → staging → production; preview is off it.
    pub fn previous(self) -> Option<Self> {
        match self {
            Environment::Staging => Some(Environment::Dev),
            Environment::Production => Some(Environment::Staging),
            Environment::Dev | Environment::Preview => None,
        }
    }

    pub fn next(self) -> Option<Self> {
        match self {
            Environment::Dev => Some(Environment::Staging),
            Environment::Staging => Some(Environment::Production),
            Environment::Production | Environment::Preview => None,
        }
    }
}

impl std::str::FromStr for Environment {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Environment::from_word(&s.to_ascii_lowercase())
            .ok_or_else(|| NameError::UnknownEnvironment(s.to_owned()))
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_dns_labels() {
        assert!(ServiceName::parse("order-service").is_ok());
        assert!(ServiceName::parse("a1").is_ok());
        for bad in [
            "",
            "Order",
            "-x",
            "x-",
            "a--b",
            "1abc",
            "a_b",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(ServiceName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_deserialize_through_parse() {
        let ok: ServiceName = serde_json::from_str("\"cart-service\"").unwrap();
        assert_eq!(ok.as_str(), "cart-service");
        assert!(serde_json::from_str::<ServiceName>("\"Cart Service\"").is_err());
    }

    #[test]
    fn environment_synonyms() {
        assert_eq!(
            "PRD".parse::<Environment>().unwrap(),
            Environment::Production
        );
        assert_eq!("uat".parse::<Environment>().unwrap(), Environment::Staging);
        assert_eq!("temp".parse::<Environment>().unwrap(), Environment::Preview);
        assert!("moon".parse::<Environment>().is_err());
        assert_eq!(
            Environment::Production.previous(),
            Some(Environment::Staging)
        );
        assert_eq!(Environment::Preview.next(), None);
    }
}
