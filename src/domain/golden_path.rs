//! The golden path's standard size of each resource type (`[golden_path]`):
//! what a confirmation card shows is exactly what the drivers receive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ResourceKind;

/// One resource type's standard size. Every field but `title` is a
/// parameter handed to the driver as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSize {
    /// What people call it ("PostgreSQL").
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// vCPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory, as Kubernetes quantities ("4Gi").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<String>,
    /// How often it is backed up ("daily").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<String>,
}

impl ResourceSize {
    fn new(title: &str) -> Self {
        ResourceSize {
            title: title.into(),
            version: None,
            cpu: None,
            memory: None,
            storage: None,
            nodes: None,
            partitions: None,
            backups: None,
        }
    }

    /// The parameters a driver receives (everything but the title).
    pub fn params(&self) -> BTreeMap<&'static str, String> {
        [
            ("version", &self.version),
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("storage", &self.storage),
            ("nodes", &self.nodes),
            ("partitions", &self.partitions),
            ("backups", &self.backups),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }

    /// For the card: "PostgreSQL 16 · 2 vCPU · 4Gi memory · daily backups".
    pub fn describe(&self) -> String {
        let mut head = self.title.clone();
        if let Some(v) = &self.version {
            head = format!("{head} {v}");
        }
        let mut parts = vec![head];
        let mut push = |v: &Option<String>, f: &dyn Fn(&str) -> String| {
            if let Some(v) = v {
                parts.push(f(v));
            }
        };
        push(&self.cpu, &|v| format!("{v} vCPU"));
        push(&self.memory, &|v| format!("{v} memory"));
        push(&self.storage, &|v| format!("{v} storage"));
        push(&self.nodes, &|v| format!("{v} nodes"));
        push(&self.partitions, &|v| format!("{v} partitions"));
        push(&self.backups, &|v| format!("{v} backups"));
        parts.join(" · ")
    }
}

/// Every resource type's standard size; a type the configuration leaves out
/// keeps its built-in default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GoldenPath(BTreeMap<ResourceKind, ResourceSize>);

impl Default for GoldenPath {
    fn default() -> Self {
        let sized = |title: &str, f: &dyn Fn(&mut ResourceSize)| {
            let mut s = ResourceSize::new(title);
            f(&mut s);
            s
        };
        let some = |v: &str| Some(v.to_owned());
        GoldenPath(BTreeMap::from([
            (
                ResourceKind::Postgres,
                sized("PostgreSQL", &|s| {
                    s.version = some("16");
                    s.cpu = some("2");
                    s.memory = some("4Gi");
                    s.backups = some("daily");
                }),
            ),
            (
                ResourceKind::Mysql,
                sized("MySQL", &|s| {
                    s.version = some("8.4");
                    s.cpu = some("2");
                    s.memory = some("4Gi");
                    s.backups = some("daily");
                }),
            ),
            (
                ResourceKind::Redis,
                sized("Redis", &|s| {
                    s.version = some("7");
                    s.memory = some("1Gi");
                }),
            ),
            (
                ResourceKind::Kafka,
                sized("Kafka", &|s| {
                    s.version = some("3.7");
                    s.partitions = some("3");
                }),
            ),
            (
                ResourceKind::Rabbitmq,
                sized("RabbitMQ", &|s| s.version = some("3.13")),
            ),
            (
                ResourceKind::S3,
                sized("S3 bucket", &|s| s.backups = some("versioned")),
            ),
            (
                ResourceKind::Mongodb,
                sized("MongoDB", &|s| {
                    s.version = some("7");
                    s.cpu = some("2");
                    s.memory = some("4Gi");
                }),
            ),
            (
                ResourceKind::Opensearch,
                sized("OpenSearch", &|s| {
                    s.version = some("2");
                    s.nodes = some("3");
                }),
            ),
        ]))
    }
}

impl GoldenPath {
    /// The configured sizes over the defaults.
    pub fn merged(configured: BTreeMap<ResourceKind, ResourceSize>) -> Self {
        let mut all = GoldenPath::default();
        all.0.extend(configured);
        all
    }

    pub fn size(&self, kind: ResourceKind) -> Option<&ResourceSize> {
        self.0.get(&kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_and_the_driver_read_the_same_size() {
        let gp = GoldenPath::default();
        let pg = gp.size(ResourceKind::Postgres).unwrap();
        assert_eq!(
            pg.describe(),
            "PostgreSQL 16 · 2 vCPU · 4Gi memory · daily backups"
        );
        assert_eq!(pg.params()["memory"], "4Gi");
        assert!(!pg.params().contains_key("title"));
        let configured: BTreeMap<ResourceKind, ResourceSize> = toml::from_str(
            "[postgres]\ntitle = \"PostgreSQL\"\nversion = \"17\"\nmemory = \"8Gi\"\n",
        )
        .unwrap();
        let gp = GoldenPath::merged(configured);
        assert_eq!(
            gp.size(ResourceKind::Postgres).unwrap().describe(),
            "PostgreSQL 17 · 8Gi memory"
        );
        assert!(gp.size(ResourceKind::Redis).is_some());
    }
}
