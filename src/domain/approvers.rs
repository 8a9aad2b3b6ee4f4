//! Who may approve a change: the approver teams of a request, and the
//! four-eyes rule, which is about people rather than names.
//!
//! The facts about people (who exists, who is in which team, which chat ids
//! and email belong to whom) come from a [`Directory`]; the catalog is one.
//! Keeping them behind a trait keeps the rule here, below the catalog.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::wording::join_or;
use super::{TeamName, UserName};

/// What the approval rules need to know about people.
pub trait Directory {
    /// Whether `user` is a known person.
    fn knows(&self, user: &UserName) -> bool;
    /// Whether `user` is a member of `team`.
    fn is_member(&self, user: &UserName, team: &TeamName) -> bool;
    /// The members listed for `team`; none when the team is unknown.
    fn members(&self, team: &TeamName) -> &[UserName];
    /// The other identities (chat ids, email) of the person named `name`;
    /// none when nobody has that name.
    fn aliases(&self, name: &str) -> Vec<&str>;
}

/// Whether two written identities (email, chat id, user name) name the
/// same thing: emails are case-insensitive, and ids differing only in case
/// are treated alike so a typo cannot split one person in two.
pub fn same_identity(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// The teams whose members may approve a request, resolved from policy and
/// the catalog when the request was made. Stored with the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvers {
    pub teams: Vec<TeamName>,
}

impl Approvers {
    pub fn is_empty(&self) -> bool {
        self.teams.is_empty()
    }

    /// "a member of team-commerce or team-platform"; "nobody" when no
    /// approver team is known.
    pub fn describe(&self) -> String {
        if self.teams.is_empty() {
            "nobody (no approver team is known in the catalog)".into()
        } else {
            format!("a member of {}", self.teams_or())
        }
    }

    /// "team-a", "team-a or team-b", "team-a, team-b or team-c".
    pub fn teams_or(&self) -> String {
        join_or(&self.teams)
    }

    /// Whether `user` is a member of one of the teams.
    pub fn includes(&self, people: &dyn Directory, user: &UserName) -> bool {
        self.teams.iter().any(|t| people.is_member(user, t))
    }

    /// The users who could approve a request by `requester` (a user name):
    /// every member of the teams except the requester (or anyone sharing an
    /// identity with them), sorted.
    pub fn eligible(&self, people: &dyn Directory, requester: &str) -> Vec<UserName> {
        let mut out = BTreeSet::new();
        for team in &self.teams {
            for m in people.members(team) {
                if people.is_member(m, team) && !same_person(people, m, requester, "") {
                    out.insert(m.clone());
                }
            }
        }
        out.into_iter().collect()
    }

    /// May `approver` approve (or deny) a request by `requester`?
    /// Four-eyes: the requester never approves their own request, even
    /// when a member. `requester` and `requester_chat_id` are the stored
    /// request's: the requester's user name (or audit name when unknown)
    /// and the chat account they wrote from.
    pub fn may_approve(
        &self,
        people: &dyn Directory,
        approver: &UserName,
        requester: &str,
        requester_chat_id: &str,
    ) -> Result<(), ApprovalRefused> {
        if same_person(people, approver, requester, requester_chat_id) {
            return Err(ApprovalRefused::OwnRequest {
                approvers: self.clone(),
            });
        }
        if !people.knows(approver) {
            return Err(ApprovalRefused::UnknownApprover {
                approver: approver.clone(),
            });
        }
        if self.is_empty() {
            return Err(ApprovalRefused::NoApprovers);
        }
        if self.includes(people, approver) {
            Ok(())
        } else {
            Err(ApprovalRefused::NotAnApprover {
                approvers: self.clone(),
            })
        }
    }
}

/// Why someone may not approve a request; the text is shown to them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefused {
    #[error("{}", own_request(.approvers))]
    OwnRequest { approvers: Approvers },
    #[error("`{approver}` is not a user in the software catalog, so Paver cannot check that you may approve this. Ask the platform team to add you to the catalog.")]
    UnknownApprover { approver: UserName },
    #[error("Nobody can approve this request: policy names no approver team for it that exists in the catalog. Ask the platform team to check policy.approvers.")]
    NoApprovers,
    #[error("{}", not_an_approver(.approvers))]
    NotAnApprover { approvers: Approvers },
}

fn own_request(approvers: &Approvers) -> String {
    if approvers.is_empty() {
        "You asked for this change yourself, so you cannot approve it (four-eyes rule).".into()
    } else {
        format!(
            "You asked for this change yourself, so you cannot approve it (four-eyes rule): another member of {} has to.",
            approvers.teams_or()
        )
    }
}

fn not_an_approver(approvers: &Approvers) -> String {
    format!(
        "Only {} can approve this, and you are not {}.",
        approvers.describe(),
        match approvers.teams.as_slice() {
            [one] => format!("a member of {one}"),
            _ => "a member of any of them".into(),
        }
    )
}

/// Every identity a person is known by: `user` itself and, when the
/// directory knows them, their chat ids and email.
fn identities<'a>(people: &'a dyn Directory, user: &'a str) -> Vec<&'a str> {
    let mut out = vec![user];
    out.extend(people.aliases(user.trim()));
    out.retain(|v| !v.trim().is_empty());
    out
}

/// Whether the user `user` is the person who made a request, known as
/// `requester` (their user name; an audit name such as `slack:U0X` or a
/// chat id or email when the catalog did not know them) and
/// `requester_chat_id` (the chat account they wrote from). Four-eyes is
/// about people, not names: any identity of one (user name, Slack id,
/// Discord id, email) matching any of the other's is the same person, so
/// two users sharing an email or chat id cannot approve each other.
pub fn same_person(
    people: &dyn Directory,
    user: &UserName,
    requester: &str,
    requester_chat_id: &str,
) -> bool {
    let mut theirs = identities(people, requester);
    // An unknown requester is recorded as `platform:id`; the id is what a
    // catalog annotation would name.
    if let Some((_, id)) = requester.split_once(':') {
        theirs.push(id);
    }
    if !requester_chat_id.trim().is_empty() {
        theirs.push(requester_chat_id);
    }
    let mine = identities(people, user.as_str());
    mine.iter()
        .any(|m| theirs.iter().any(|t| same_identity(m, t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn team(name: &str) -> TeamName {
        TeamName::parse(name).unwrap()
    }

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    /// Two accounts of one person (a shared email) and someone else.
    struct People {
        team: Vec<UserName>,
    }

    impl Directory for People {
        fn knows(&self, user: &UserName) -> bool {
            self.team.contains(user)
        }
        fn is_member(&self, user: &UserName, _team: &TeamName) -> bool {
            self.team.contains(user)
        }
        fn members(&self, _team: &TeamName) -> &[UserName] {
            &self.team
        }
        fn aliases(&self, name: &str) -> Vec<&str> {
            match name {
                "ann" | "ann-admin" => vec!["Ann@Example.com"],
                _ => vec![],
            }
        }
    }

    #[test]
    fn approvers_describe_themselves_and_serialize() {
        let mut a = Approvers::default();
        assert!(a.describe().starts_with("nobody"));
        a.teams.push(team("team-commerce"));
        assert_eq!(a.describe(), "a member of team-commerce");
        a.teams.push(team("team-platform"));
        assert_eq!(a.describe(), "a member of team-commerce or team-platform");
        a.teams.push(team("team-data"));
        assert_eq!(
            a.describe(),
            "a member of team-commerce, team-platform or team-data"
        );
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"teams": ["team-commerce", "team-platform", "team-data"]})
        );
        assert_eq!(serde_json::from_value::<Approvers>(json).unwrap(), a);
    }

    #[test]
    fn four_eyes_is_about_people_without_a_catalog() {
        let people = People {
            team: vec![user("ann"), user("ann-admin"), user("pat")],
        };
        let approvers = Approvers {
            teams: vec![team("team-platform")],
        };
        assert!(same_person(&people, &user("ann-admin"), "ann", ""));
        assert!(same_person(&people, &user("pat"), "slack:pat", ""));
        assert_eq!(approvers.eligible(&people, "ann"), vec![user("pat")]);
        assert_eq!(
            approvers.may_approve(&people, &user("ann-admin"), "ann", ""),
            Err(ApprovalRefused::OwnRequest {
                approvers: approvers.clone()
            })
        );
        assert_eq!(
            approvers.may_approve(&people, &user("pat"), "ann", ""),
            Ok(())
        );
        assert!(approvers
            .may_approve(&people, &user("zed"), "ann", "")
            .unwrap_err()
            .to_string()
            .contains("not a user"));
    }
}
