//! Scorecards as the platform's docs define them
//! (`docs/governance/scorecards.md`): weighted checks per service, and the
//! level a service (or a team) reaches.

use std::fmt;

use super::{ServiceName, TeamName};

/// How much a failing check matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Weight {
    // Declared least first, so sorting by weight descending puts the most
    // critical first.
    Low,
    Medium,
    High,
    Critical,
}

impl Weight {
    pub fn as_str(self) -> &'static str {
        match self {
            Weight::Low => "low",
            Weight::Medium => "medium",
            Weight::High => "high",
            Weight::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "low" => Weight::Low,
            "medium" => Weight::Medium,
            "high" => Weight::High,
            "critical" => Weight::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The levels: each needs the one below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Bronze,
    Silver,
    Gold,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Bronze => "bronze",
            Level::Silver => "silver",
            Level::Gold => "gold",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Level::Bronze => "Bronze",
            Level::Silver => "Silver",
            Level::Gold => "Gold",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "bronze" => Level::Bronze,
            "silver" => Level::Silver,
            "gold" => Level::Gold,
            _ => return None,
        })
    }

    /// The highest level whose checks all pass: Bronze needs every critical
    /// check, Silver every critical and high one, Gold every one. Checks
    /// that do not apply count as passing.
    pub fn reached(checks: &[CheckOutcome]) -> Option<Level> {
        let all_pass_at_least =
            |w: Weight| checks.iter().filter(|c| c.weight >= w).all(|c| c.passes());
        if !all_pass_at_least(Weight::Critical) {
            None
        } else if !all_pass_at_least(Weight::High) {
            Some(Level::Bronze)
        } else if !all_pass_at_least(Weight::Low) {
            Some(Level::Silver)
        } else {
            Some(Level::Gold)
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// What one check found for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The check does not apply (a service without a database and
    /// `has-backups`): it counts as passing.
    NotApplicable,
    /// Failing, and why, in the words a team can act on.
    Fail(String),
}

/// One check's outcome for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// `has-owner`, `ci-passing`, or a configured check's name.
    pub name: String,
    pub weight: Weight,
    pub verdict: Verdict,
    /// One line: what to do about it.
    pub help: String,
    /// The docs' "how to fix" page for it.
    pub fix_url: Option<String>,
}

impl CheckOutcome {
    pub fn passes(&self) -> bool {
        !matches!(self.verdict, Verdict::Fail(_))
    }

    pub fn reason(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Fail(why) => Some(why),
            _ => None,
        }
    }
}

/// One service's scorecard now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceScore {
    pub service: ServiceName,
    pub owner: Option<TeamName>,
    /// `None`: below Bronze (a critical check fails).
    pub level: Option<Level>,
    pub checks: Vec<CheckOutcome>,
}

impl ServiceScore {
    pub fn new(service: ServiceName, owner: Option<TeamName>, checks: Vec<CheckOutcome>) -> Self {
        ServiceScore {
            level: Level::reached(&checks),
            service,
            owner,
            checks,
        }
    }

    /// The failing checks, most critical first.
    pub fn failing(&self) -> Vec<&CheckOutcome> {
        let mut f: Vec<&CheckOutcome> = self.checks.iter().filter(|c| !c.passes()).collect();
        f.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.name.cmp(&b.name)));
        f
    }
}

/// A team's level: its weakest service's (a team is as production-ready
/// as the least ready thing it runs). `None` for a team with a service
/// below Bronze; a team without services has no level either.
pub fn team_level(scores: &[ServiceScore]) -> Option<Level> {
    if scores.is_empty() {
        return None;
    }
    scores.iter().map(|s| s.level).min().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(weight: Weight, pass: bool) -> CheckOutcome {
        CheckOutcome {
            name: format!("{weight}-{pass}"),
            weight,
            verdict: if pass {
                Verdict::Pass
            } else {
                Verdict::Fail("no".into())
            },
            help: String::new(),
            fix_url: None,
        }
    }

    #[test]
    fn levels_are_the_highest_whose_checks_all_pass() {
        use Weight::*;
        assert_eq!(
            Level::reached(&[check(Critical, false), check(High, true)]),
            None
        );
        assert_eq!(
            Level::reached(&[check(Critical, true), check(High, false)]),
            Some(Level::Bronze)
        );
        assert_eq!(
            Level::reached(&[check(Critical, true), check(High, true), check(Low, false)]),
            Some(Level::Silver)
        );
        assert_eq!(
            Level::reached(&[check(Critical, true), check(Medium, true), check(Low, true)]),
            Some(Level::Gold)
        );
        // Not applicable counts as passing.
        let mut na = check(Critical, false);
        na.verdict = Verdict::NotApplicable;
        assert_eq!(Level::reached(&[na]), Some(Level::Gold));
        let s = |level| ServiceScore {
            service: ServiceName::parse("a").unwrap(),
            owner: None,
            level,
            checks: vec![],
        };
        assert_eq!(
            team_level(&[s(Some(Level::Gold)), s(Some(Level::Bronze))]),
            Some(Level::Bronze)
        );
        assert_eq!(team_level(&[s(Some(Level::Gold)), s(None)]), None);
        assert!(Level::Bronze < Level::Silver && Weight::Critical > Weight::High);
    }
}
