//! The software catalog: Backstage entities, read from a YAML file or a
//! Backstage backend, turned into typed components, teams, users and templates.

mod backstage;
mod entity;
mod model;
mod shared;

pub use crate::domain::same_identity;
pub use backstage::{BackstageClient, BackstageError};
pub use entity::{parse_entities, parse_yaml_documents, EntityRef};
pub use model::{Backup, Catalog, CatalogResource, Component, Group, Template, User, UserMatch};
pub use shared::{CatalogSource, SharedCatalog};

/// Annotation naming a team's Slack channel (Backstage's own convention).
pub const SLACK_CHANNEL_ANNOTATION: &str = "slack.com/channel-id";
/// Annotation naming a team's Discord channel (Paver's convention: the
/// channel's snowflake id, as Discord's "Copy Channel ID" gives it).
pub const DISCORD_CHANNEL_ANNOTATION: &str = "discord.com/channel-id";
/// Annotation mapping a catalog user to a Slack user id.
pub const SLACK_USER_ANNOTATION: &str = "slack.com/user-id";
/// Annotation mapping a catalog user to a Discord user id.
pub const DISCORD_USER_ANNOTATION: &str = "discord.com/user-id";
/// Annotation naming a component's GitHub repository (`owner/repo`).
pub const GITHUB_SLUG_ANNOTATION: &str = "github.com/project-slug";
/// Annotation naming the Argo CD application of a component.
pub const ARGOCD_APP_ANNOTATION: &str = "argocd/app-name";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Backstage(#[from] BackstageError),
}
