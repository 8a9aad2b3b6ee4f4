//! The typed catalog Paver works with.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::entity::{parse_entities, parse_yaml_documents, EntityRef, RawEntity};
use super::{
    CatalogError, DISCORD_CHANNEL_ANNOTATION, DISCORD_USER_ANNOTATION, SLACK_CHANNEL_ANNOTATION,
    SLACK_USER_ANNOTATION,
};
use crate::domain::{
    same_identity, Directory, NameError, ServiceName, TeamName, TemplateName, UserName,
};

#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub name: ServiceName,
    pub title: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub lifecycle: Option<String>,
    /// The owning group; `None` when the entity names no owner (or a user).
    pub owner: Option<TeamName>,
    /// The owner as written when it is a user rather than a group.
    pub owner_user: Option<UserName>,
    pub system: Option<String>,
    pub tags: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: TeamName,
    pub title: Option<String>,
    pub group_type: Option<String>,
    pub parent: Option<TeamName>,
    pub slack_channel: Option<String>,
    pub discord_channel: Option<String>,
    /// Members from the group's own `spec.members`, its `hasMember`
    /// relations and every user's `memberOf`, merged.
    pub members: Vec<UserName>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: UserName,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub slack_user_id: Option<String>,
    pub discord_user_id: Option<String>,
    pub member_of: Vec<TeamName>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: TemplateName,
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub template_type: Option<String>,
    pub owner: Option<TeamName>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CatalogResource {
    pub name: String,
    pub resource_type: Option<String>,
    pub owner: Option<TeamName>,
    /// `spec.backup`: whether backups are on, and how long they are kept
    /// (`enabled`, `retentionDays`); `None` when the entity says nothing.
    pub backup: Option<Backup>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backup {
    pub enabled: bool,
    pub retention_days: Option<u32>,
}

/// Everything Paver knows about the organisation. Immutable once built;
/// a refresh builds a new one.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    components: BTreeMap<ServiceName, Component>,
    groups: BTreeMap<TeamName, Group>,
    users: BTreeMap<UserName, User>,
    templates: BTreeMap<TemplateName, Template>,
    resources: Vec<CatalogResource>,
    warnings: Vec<String>,
    /// User entities written twice (the first is kept): identity conflicts.
    duplicate_users: Vec<String>,
}

/// Reads one identity (email, a chat id) of a user.
type IdentityField = fn(&User) -> Option<&str>;

/// Who a chat id or email names in the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum UserMatch<'a> {
    Nobody,
    One(&'a User),
    /// Several users claim it (named, sorted): nobody can be told apart.
    Ambiguous(Vec<UserName>),
}

impl<'a> UserMatch<'a> {
    /// The user when exactly one matches.
    pub fn unique(self) -> Option<&'a User> {
        match self {
            UserMatch::One(u) => Some(u),
            UserMatch::Nobody | UserMatch::Ambiguous(_) => None,
        }
    }
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl Catalog {
    pub fn from_yaml_file(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::from_yaml_str(&text, &path.display().to_string()))
    }

    /// Builds a catalog from multi-document YAML. Never fails: what cannot
    /// be read is skipped and reported in [`Catalog::warnings`].
    pub fn from_yaml_str(text: &str, origin: &str) -> Self {
        let (docs, mut warnings) = parse_yaml_documents(text);
        for w in &mut warnings {
            *w = format!("{origin}: {w}");
        }
        let values = docs
            .into_iter()
            .map(|(line, v)| (format!("{origin}, line {line}"), v));
        let mut catalog = Self::from_values(values);
        warnings.append(&mut catalog.warnings);
        catalog.warnings = warnings;
        catalog
    }

    /// Builds a catalog from entity JSON values labelled with their origin.
    pub fn from_values(values: impl IntoIterator<Item = (String, Value)>) -> Self {
        let (raw, warnings) = parse_entities(values);
        let mut c = Catalog {
            warnings,
            ..Catalog::default()
        };
        for e in raw {
            c.add(e);
        }
        c.link_members();
        for w in &c.warnings {
            tracing::warn!(target: "paver::catalog", "{w}");
        }
        for conflict in c.identity_conflicts() {
            tracing::warn!(target: "paver::catalog", "{conflict}");
        }
        c
    }

    fn add(&mut self, e: RawEntity) {
        let label = format!("{} {}", e.kind, e.metadata.name);
        let result = match e.kind.as_str() {
            "Component" => component(&e).map(|c| {
                if self.components.contains_key(&c.name) {
                    return Some(format!("duplicate {label}: keeping the first"));
                }
                self.components.insert(c.name.clone(), c);
                None
            }),
            "Group" => group(&e).map(|g| {
                self.groups.insert(g.name.clone(), g);
                None
            }),
            "User" => user(&e).map(|u| {
                if self.users.contains_key(&u.name) {
                    // A second entity for one name is two people or a
                    // copy-paste slip; either way its identities are unsure.
                    self.duplicate_users.push(format!(
                        "catalog user `{}` is defined more than once: keeping the first",
                        u.name
                    ));
                    return None;
                }
                self.users.insert(u.name.clone(), u);
                None
            }),
            "Template" => template(&e).map(|t| {
                self.templates.insert(t.name.clone(), t);
                None
            }),
            "Resource" => {
                self.resources.push(CatalogResource {
                    name: e.metadata.name.clone(),
                    resource_type: str_at(&e.spec, "type"),
                    owner: owner_team(&e),
                    backup: e.spec.get("backup").map(|b| Backup {
                        // `backup:` with settings but no `enabled` means on.
                        enabled: b.get("enabled").and_then(Value::as_bool).unwrap_or(true),
                        retention_days: b
                            .get("retentionDays")
                            .and_then(Value::as_u64)
                            .and_then(|d| u32::try_from(d).ok()),
                    }),
                });
                Ok(None)
            }
            // Systems, APIs, Domains, Locations: valid, not used by Paver.
            _ => Ok(None),
        };
        match result {
            Ok(None) => {}
            Ok(Some(w)) => self.warnings.push(w),
            Err(why) => self.warnings.push(format!("skipping {label}: {why}")),
        }
    }

    /// Membership is written on either side (user `memberOf`, group
    /// `members`/relations); make both sides agree.
    fn link_members(&mut self) {
        let mut pairs: Vec<(TeamName, UserName)> = Vec::new();
        for u in self.users.values() {
            for t in &u.member_of {
                pairs.push((t.clone(), u.name.clone()));
            }
        }
        for g in self.groups.values() {
            for m in &g.members {
                pairs.push((g.name.clone(), m.clone()));
            }
        }
        for (team, user) in pairs {
            if let Some(g) = self.groups.get_mut(&team) {
                if !g.members.contains(&user) {
                    g.members.push(user.clone());
                }
            }
            if let Some(u) = self.users.get_mut(&user) {
                if !u.member_of.contains(&team) {
                    u.member_of.push(team.clone());
                }
            }
        }
    }

    pub fn component(&self, name: &str) -> Option<&Component> {
        ServiceName::parse(name)
            .ok()
            .and_then(|n| self.components.get(&n))
    }

    pub fn components(&self) -> impl Iterator<Item = &Component> {
        self.components.values()
    }

    /// The components whose `github.com/project-slug` is `slug` (GitHub's
    /// `owner/repo`, compared without case, as GitHub compares them).
    /// Several components may share one repository (a monorepo).
    pub fn components_in_repo(&self, slug: &str) -> Vec<&Component> {
        self.components()
            .filter(|c| {
                c.annotations
                    .get(super::GITHUB_SLUG_ANNOTATION)
                    .is_some_and(|s| s.trim().eq_ignore_ascii_case(slug.trim()))
            })
            .collect()
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        TeamName::parse(name).ok().and_then(|n| self.groups.get(&n))
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        UserName::parse(name).ok().and_then(|n| self.users.get(&n))
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// The catalog users a Slack user id is linked to.
    pub fn match_slack_id(&self, id: &str) -> UserMatch<'_> {
        self.match_identity(|u| u.slack_user_id.as_deref(), id)
    }

    /// The catalog users a Discord user id is linked to.
    pub fn match_discord_id(&self, id: &str) -> UserMatch<'_> {
        self.match_identity(|u| u.discord_user_id.as_deref(), id)
    }

    /// The catalog users with this email (case-insensitive).
    pub fn match_email(&self, email: &str) -> UserMatch<'_> {
        self.match_identity(|u| u.email.as_deref(), email)
    }

    /// The one catalog user linked to a Slack user id. `None` also when
    /// several users claim the id: Paver cannot tell who is speaking, so the
    /// speaker counts as unknown (may neither request nor approve).
    pub fn user_by_slack_id(&self, id: &str) -> Option<&User> {
        self.match_slack_id(id).unique()
    }

    /// The one catalog user linked to a Discord user id (`None` when
    /// ambiguous, as for Slack).
    pub fn user_by_discord_id(&self, id: &str) -> Option<&User> {
        self.match_discord_id(id).unique()
    }

    /// The one catalog user with this email (`None` when ambiguous).
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.match_email(email).unique()
    }

    fn match_identity<'a>(
        &'a self,
        field: impl Fn(&'a User) -> Option<&'a str>,
        wanted: &str,
    ) -> UserMatch<'a> {
        let wanted = wanted.trim();
        if wanted.is_empty() {
            return UserMatch::Nobody;
        }
        let mut found = self
            .users
            .values()
            .filter(|u| field(u).is_some_and(|v| same_identity(v, wanted)));
        match (found.next(), found.next()) {
            (None, _) => UserMatch::Nobody,
            (Some(u), None) => UserMatch::One(u),
            (Some(a), Some(b)) => {
                let mut names = vec![a.name.clone(), b.name.clone()];
                names.extend(found.map(|u| u.name.clone()));
                UserMatch::Ambiguous(names)
            }
        }
    }

    /// Chat ids and emails claimed by more than one catalog user (and User
    /// entities written twice), in words naming the users and what they
    /// share. Any of them makes Paver unable to tell people apart, so
    /// `paver check-config` refuses such a catalog.
    pub fn identity_conflicts(&self) -> Vec<String> {
        let mut out = self.duplicate_users.clone();
        let fields: [(&str, IdentityField); 3] = [
            ("email", |u| u.email.as_deref()),
            ("Slack user id", |u| u.slack_user_id.as_deref()),
            ("Discord user id", |u| u.discord_user_id.as_deref()),
        ];
        for (what, field) in fields {
            // Keyed case-insensitively: emails are, and chat ids differing
            // only in case are a typo rather than two people.
            let mut by_value: BTreeMap<String, (&str, Vec<&UserName>)> = BTreeMap::new();
            for u in self.users.values() {
                if let Some(v) = field(u).map(str::trim).filter(|v| !v.is_empty()) {
                    by_value
                        .entry(v.to_lowercase())
                        .or_insert((v, Vec::new()))
                        .1
                        .push(&u.name);
                }
            }
            for (value, names) in by_value.into_values() {
                if names.len() > 1 {
                    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                    out.push(format!(
                        "catalog users {} share the {what} {value:?}: Paver cannot tell them apart, so none of them can request or approve until each has their own",
                        join_and(&names)
                    ));
                }
            }
        }
        out
    }

    pub fn template(&self, name: &str) -> Option<&Template> {
        TemplateName::parse(name)
            .ok()
            .and_then(|n| self.templates.get(&n))
    }

    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    pub fn resources(&self) -> &[CatalogResource] {
        &self.resources
    }

    /// The owning team of a service, when the catalog names one.
    pub fn owner_of(&self, service: &str) -> Option<&Group> {
        let owner = self.component(service)?.owner.as_ref()?;
        self.groups.get(owner)
    }

    pub fn is_member(&self, user: &UserName, team: &TeamName) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.member_of.contains(team))
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn is_empty(&self) -> bool {
        self.components.is_empty() && self.groups.is_empty() && self.users.is_empty()
    }
}

/// The catalog is where Paver learns who people are, for the approval rules.
impl Directory for Catalog {
    fn knows(&self, user: &UserName) -> bool {
        self.users.contains_key(user)
    }

    fn is_member(&self, user: &UserName, team: &TeamName) -> bool {
        Catalog::is_member(self, user, team)
    }

    fn members(&self, team: &TeamName) -> &[UserName] {
        self.groups.get(team).map_or(&[], |g| &g.members)
    }

    fn aliases(&self, name: &str) -> Vec<&str> {
        self.user(name)
            .map(|u| {
                [&u.slack_user_id, &u.discord_user_id, &u.email]
                    .into_iter()
                    .filter_map(|v| v.as_deref())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn strings_at(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

fn relation_targets<'a>(e: &'a RawEntity, kind: &'a str) -> impl Iterator<Item = EntityRef> + 'a {
    e.relations
        .iter()
        .filter(move |r| r.kind == kind)
        .filter_map(|r| EntityRef::parse(&r.target_ref, "group"))
}

/// `spec.owner` as written, else the `ownedBy` relation the backend adds.
fn owner_ref(e: &RawEntity) -> Option<EntityRef> {
    str_at(&e.spec, "owner")
        .and_then(|o| EntityRef::parse(&o, "group"))
        .or_else(|| relation_targets(e, "ownedBy").next())
}

fn owner_team(e: &RawEntity) -> Option<TeamName> {
    owner_ref(e)
        .filter(|r| r.kind == "group")
        .and_then(|r| TeamName::parse(r.name).ok())
}

fn component(e: &RawEntity) -> Result<Component, NameError> {
    let name = ServiceName::parse(e.metadata.name.clone())?;
    let owner = owner_ref(e);
    let owner_user = owner
        .as_ref()
        .filter(|r| r.kind == "user")
        .and_then(|r| UserName::parse(r.name.clone()).ok());
    Ok(Component {
        name,
        title: e.metadata.title.clone(),
        description: e.metadata.description.clone(),
        kind: str_at(&e.spec, "type"),
        lifecycle: str_at(&e.spec, "lifecycle"),
        owner: owner_team(e),
        owner_user,
        system: str_at(&e.spec, "system"),
        tags: e.metadata.tags.clone(),
        annotations: e.metadata.annotations.clone(),
        depends_on: strings_at(&e.spec, "dependsOn"),
    })
}

fn group(e: &RawEntity) -> Result<Group, NameError> {
    let name = TeamName::parse(e.metadata.name.clone())?;
    let mut members: Vec<UserName> = strings_at(&e.spec, "members")
        .iter()
        .filter_map(|m| EntityRef::parse(m, "user"))
        .filter_map(|r| UserName::parse(r.name).ok())
        .collect();
    for r in relation_targets(e, "hasMember") {
        if let Ok(u) = UserName::parse(r.name) {
            if !members.contains(&u) {
                members.push(u);
            }
        }
    }
    Ok(Group {
        name,
        title: e.metadata.title.clone(),
        group_type: str_at(&e.spec, "type"),
        parent: str_at(&e.spec, "parent")
            .and_then(|p| EntityRef::parse(&p, "group"))
            .and_then(|r| TeamName::parse(r.name).ok()),
        slack_channel: e
            .metadata
            .annotations
            .get(SLACK_CHANNEL_ANNOTATION)
            .cloned(),
        discord_channel: e
            .metadata
            .annotations
            .get(DISCORD_CHANNEL_ANNOTATION)
            .cloned(),
        members,
    })
}

fn user(e: &RawEntity) -> Result<User, NameError> {
    let name = UserName::parse(e.metadata.name.clone())?;
    let profile = e.spec.get("profile").cloned().unwrap_or(Value::Null);
    let mut member_of: Vec<TeamName> = strings_at(&e.spec, "memberOf")
        .iter()
        .filter_map(|m| EntityRef::parse(m, "group"))
        .filter_map(|r| TeamName::parse(r.name).ok())
        .collect();
    for r in relation_targets(e, "memberOf") {
        if let Ok(t) = TeamName::parse(r.name) {
            if !member_of.contains(&t) {
                member_of.push(t);
            }
        }
    }
    Ok(User {
        name,
        display_name: str_at(&profile, "displayName"),
        email: str_at(&profile, "email"),
        slack_user_id: e.metadata.annotations.get(SLACK_USER_ANNOTATION).cloned(),
        discord_user_id: e.metadata.annotations.get(DISCORD_USER_ANNOTATION).cloned(),
        member_of,
    })
}

fn template(e: &RawEntity) -> Result<Template, NameError> {
    let name = TemplateName::parse(e.metadata.name.clone())?;
    Ok(Template {
        name,
        title: e.metadata.title.clone(),
        description: e.metadata.description.clone(),
        tags: e.metadata.tags.clone(),
        template_type: str_at(&e.spec, "type"),
        owner: owner_team(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "../shared/fixtures/catalog.yaml";

    #[test]
    fn a_github_repository_names_its_components() {
        let c = Catalog::from_yaml_file(Path::new(SAMPLE)).unwrap();
        let names = |slug: &str| {
            c.components_in_repo(slug)
                .iter()
                .map(|c| c.name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("acme/order-service"), ["order-service"]);
        assert_eq!(names("ACME/Order-Service"), ["order-service"]);
        assert!(names("acme/nothing-here").is_empty());
        assert!(names("").is_empty());
    }

    #[test]
    fn loads_the_sample_catalog() {
        let c = Catalog::from_yaml_file(Path::new(SAMPLE)).unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        assert_eq!(c.components().count(), 20);
        assert_eq!(c.groups().count(), 6);
        assert_eq!(c.users().count(), 9);
        assert_eq!(c.templates().count(), 6);
        assert_eq!(c.resources().len(), 5);
        let order = c.component("order-service").unwrap();
        assert_eq!(order.owner.as_ref().unwrap().as_str(), "team-commerce");
        assert_eq!(
            c.owner_of("order-service")
                .unwrap()
                .slack_channel
                .as_deref(),
            Some("C0COMMERCE")
        );
        assert!(c.component("legacy-reports").unwrap().owner.is_none());
        assert_eq!(
            c.user_by_slack_id("U0ALICE").unwrap().name.as_str(),
            "alice"
        );
        assert_eq!(
            c.user_by_email("BOB@example.com").unwrap().name.as_str(),
            "bob"
        );
        let commerce = c.group("team-commerce").unwrap();
        assert!(commerce.members.iter().any(|m| m.as_str() == "alice"));
    }

    #[test]
    fn shared_identities_are_conflicts_and_resolve_to_nobody() {
        let text = r#"
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: alice
  annotations: {slack.com/user-id: U0SHARED, discord.com/user-id: "111"}
spec: {profile: {email: alice@example.com}}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: mallory
  annotations: {slack.com/user-id: U0SHARED}
spec: {profile: {email: ALICE@example.com}}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
  annotations: {slack.com/user-id: U0BOB, discord.com/user-id: "222"}
spec: {profile: {email: bob@example.com}}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: bob
  annotations: {discord.com/user-id: "333"}
"#;
        let c = Catalog::from_yaml_str(text, "inline");
        assert!(c.user_by_slack_id("U0SHARED").is_none());
        assert_eq!(
            c.match_slack_id("U0SHARED"),
            UserMatch::Ambiguous(vec![
                UserName::parse("alice").unwrap(),
                UserName::parse("mallory").unwrap()
            ])
        );
        assert!(c.user_by_email("alice@example.com").is_none());
        assert_eq!(c.user_by_discord_id("111").unwrap().name.as_str(), "alice");
        assert_eq!(c.user_by_slack_id("U0BOB").unwrap().name.as_str(), "bob");
        // The second `bob` is dropped, not merged: its Discord id names nobody.
        assert!(c.user_by_discord_id("333").is_none());
        let conflicts = c.identity_conflicts();
        assert_eq!(conflicts.len(), 3, "{conflicts:?}");
        let all = conflicts.join("\n");
        assert!(all.contains("`bob` is defined more than once"), "{all}");
        assert!(
            all.contains("`alice` and `mallory` share the email \"alice@example.com\""),
            "{all}"
        );
        assert!(
            all.contains("`alice` and `mallory` share the Slack user id \"U0SHARED\""),
            "{all}"
        );
        let sample = Catalog::from_yaml_file(Path::new(SAMPLE)).unwrap();
        assert!(sample.identity_conflicts().is_empty());
    }

    #[test]
    fn malformed_entities_are_skipped_and_named() {
        let text = r#"
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: Bad_Name
spec: {owner: team-a}
---
apiVersion: backstage.io/v1alpha1
kind: Component
spec: {owner: team-a}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: team-a
  annotations:
    discord.com/channel-id: "123456789"
spec:
  type: team
  members: [user:default/zed]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: good-service}
relations:
  - {type: ownedBy, targetRef: "group:default/team-a"}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: zed}
spec: {profile: {email: zed@example.com}}
"#;
        let c = Catalog::from_yaml_str(text, "inline");
        assert_eq!(c.components().count(), 1);
        let w = c.warnings().join("\n");
        assert!(w.contains("Component Bad_Name"), "{w}");
        assert!(w.contains("Component without a name"), "{w}");
        let good = c.component("good-service").unwrap();
        assert_eq!(good.owner.as_ref().unwrap().as_str(), "team-a");
        assert_eq!(
            c.group("team-a").unwrap().discord_channel.as_deref(),
            Some("123456789")
        );
        let zed = c.user("zed").unwrap();
        assert_eq!(zed.member_of[0].as_str(), "team-a");
    }
}
