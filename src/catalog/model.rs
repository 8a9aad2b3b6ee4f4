//! The typed catalog Paver works with.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::entity::{parse_entities, parse_yaml_documents, EntityRef, RawEntity};
use super::{
    CatalogError, DISCORD_CHANNEL_ANNOTATION, DISCORD_USER_ANNOTATION, SLACK_CHANNEL_ANNOTATION,
    SLACK_USER_ANNOTATION,
};
use crate::domain::{ServiceName, TeamName, TemplateName, UserName};

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

    pub fn user_by_slack_id(&self, id: &str) -> Option<&User> {
        self.users
            .values()
            .find(|u| u.slack_user_id.as_deref() == Some(id))
    }

    pub fn user_by_discord_id(&self, id: &str) -> Option<&User> {
        self.users
            .values()
            .find(|u| u.discord_user_id.as_deref() == Some(id))
    }

    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users.values().find(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
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

fn component(e: &RawEntity) -> Result<Component, String> {
    let name = ServiceName::parse(e.metadata.name.clone()).map_err(|e| e.to_string())?;
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

fn group(e: &RawEntity) -> Result<Group, String> {
    let name = TeamName::parse(e.metadata.name.clone()).map_err(|e| e.to_string())?;
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

fn user(e: &RawEntity) -> Result<User, String> {
    let name = UserName::parse(e.metadata.name.clone()).map_err(|e| e.to_string())?;
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

fn template(e: &RawEntity) -> Result<Template, String> {
    let name = TemplateName::parse(e.metadata.name.clone()).map_err(|e| e.to_string())?;
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
