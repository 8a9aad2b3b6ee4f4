use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The resource types the platform can attach to an environment.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Postgres,
    Mysql,
    Redis,
    Kafka,
    Rabbitmq,
    S3,
    Mongodb,
    Opensearch,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 8] = [
        ResourceKind::Postgres,
        ResourceKind::Mysql,
        ResourceKind::Redis,
        ResourceKind::Kafka,
        ResourceKind::Rabbitmq,
        ResourceKind::S3,
        ResourceKind::Mongodb,
        ResourceKind::Opensearch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Postgres => "postgres",
            ResourceKind::Mysql => "mysql",
            ResourceKind::Redis => "redis",
            ResourceKind::Kafka => "kafka",
            ResourceKind::Rabbitmq => "rabbitmq",
            ResourceKind::S3 => "s3",
            ResourceKind::Mongodb => "mongodb",
            ResourceKind::Opensearch => "opensearch",
        }
    }

    /// Canonical names and the one-word synonyms people use. Multi-word forms
    /// ("object storage") are the parser's business, not this type's.
    pub fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "postgres" | "postgresql" | "pg" | "psql" | "postgre" | "postgress" | "pgsql" => {
                ResourceKind::Postgres
            }
            "mysql" | "mariadb" | "maria" => ResourceKind::Mysql,
            "redis" | "cache" | "valkey" => ResourceKind::Redis,
            "kafka" => ResourceKind::Kafka,
            "rabbitmq" | "rabbit" | "amqp" => ResourceKind::Rabbitmq,
            "s3" | "bucket" | "buckets" => ResourceKind::S3,
            "mongodb" | "mongo" => ResourceKind::Mongodb,
            "opensearch" | "elasticsearch" | "elastic" | "es" => ResourceKind::Opensearch,
            _ => return None,
        })
    }
}

impl std::str::FromStr for ResourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceKind::from_word(&s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown resource type `{s}`"))
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
