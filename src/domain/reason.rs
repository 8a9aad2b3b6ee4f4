//! Why someone decided as they did (an approver's denial; later, a
//! scorecard check's "won't fix"), as they typed it in a modal or the
//! console. Parsed once at the edge: a `Reason` is never blank and never
//! longer than [`Reason::MAX_CHARS`], so nothing past the edge re-checks it.
//! It is the writer's own text: whatever shows it neutralises its markup
//! (`util::text::clean`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

/// Why a typed reason was refused; shown to its writer as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadReason {
    #[error("Say why, in a few words.")]
    Empty,
    #[error("That is {got} characters; keep it to {max}.", max = Reason::MAX_CHARS)]
    TooLong { got: usize },
}

impl Reason {
    /// The longest reason kept, in characters: enough for a sentence or
    /// two, short enough for a card's status line and a digest.
    pub const MAX_CHARS: usize = 500;

    /// Trims `text`; refuses it when nothing is left or it is too long.
    pub fn parse(text: &str) -> Result<Self, BadReason> {
        let t = text.trim();
        let got = t.chars().count();
        if got == 0 {
            return Err(BadReason::Empty);
        }
        if got > Self::MAX_CHARS {
            return Err(BadReason::TooLong { got });
        }
        Ok(Reason(t.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reason {
    type Error = BadReason;
    fn try_from(s: String) -> Result<Self, BadReason> {
        Reason::parse(&s)
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.0
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert_eq!(
            Reason::parse("  too risky \n").unwrap().as_str(),
            "too risky"
        );
        assert_eq!(Reason::parse(" \n\t"), Err(BadReason::Empty));
        assert_eq!(Reason::parse(""), Err(BadReason::Empty));
        let max = "é".repeat(Reason::MAX_CHARS);
        assert!(Reason::parse(&max).is_ok(), "characters, not bytes");
        assert_eq!(
            Reason::parse(&format!("{max}x")),
            Err(BadReason::TooLong { got: 501 })
        );
        // Stored (in an inbox row) and read back, it is checked again.
        assert!(serde_json::from_str::<Reason>(r#""  ""#).is_err());
        let r: Reason = serde_json::from_str(r#""fine""#).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), r#""fine""#);
    }
}
