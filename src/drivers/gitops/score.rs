//! The files Paver writes: environment files (Score workloads with
//! Paver's `paver.dev/…` annotations) and the `catalog-info.yaml` of a
//! scaffolded service. Parsing, checking and rendering them; no I/O.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::domain::{Environment, ResourceKind, ResourceSize, ServiceName};
use crate::drivers::DriverError;

/// `apiVersion` of the environment files.
pub const SCORE_API_VERSION: &str = "score.dev/v1b1";
pub const ANNOTATION_VERSION: &str = "paver.dev/version";
pub const ANNOTATION_REPLICAS: &str = "paver.dev/replicas";
pub const ANNOTATION_ENVIRONMENT: &str = "paver.dev/environment";
pub const ANNOTATION_DEPLOYED_AT: &str = "paver.dev/deployedAt";
pub const ANNOTATION_RESTARTED_AT: &str = "paver.dev/restartedAt";
pub const ANNOTATION_EXPIRES_AT: &str = "paver.dev/expiresAt";
pub const ANNOTATION_REQUEST_ID: &str = "paver.dev/requestId";
/// The version an environment runs before its first deploy.
pub const UNDEPLOYED_VERSION: &str = "latest";
/// The container Paver sets the image of.
const MAIN_CONTAINER: &str = "main";
/// The first line of every environment file.
const FILE_HEADER: &str = "# Managed by Paver: change it through Paver. Hand edits to other fields are kept, comments are not.\n";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub api_version: String,
    pub metadata: WorkloadMetadata,
    #[serde(default)]
    pub containers: BTreeMap<String, Container>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, ResourceSpec>,
    /// Whatever else the file holds, kept as it is.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadMetadata {
    pub name: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub image: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

impl Workload {
    /// A new environment: version `latest`, one replica, no resources.
    pub fn new(service: &ServiceName, environment: Environment) -> Self {
        let mut w = Workload {
            api_version: SCORE_API_VERSION.into(),
            metadata: WorkloadMetadata {
                name: service.as_str().into(),
                annotations: BTreeMap::new(),
                other: BTreeMap::new(),
            },
            containers: BTreeMap::new(),
            resources: BTreeMap::new(),
            other: BTreeMap::new(),
        };
        w.annotate(ANNOTATION_ENVIRONMENT, environment.as_str());
        w.annotate(ANNOTATION_REPLICAS, "1");
        w.set_version(UNDEPLOYED_VERSION);
        w
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata.annotations.get(key).map(String::as_str)
    }

    pub(super) fn annotate(&mut self, key: &str, value: impl Into<String>) {
        self.metadata
            .annotations
            .insert(key.to_owned(), value.into());
    }

    /// The version annotation, else the tag of the main container's image.
    pub fn version(&self) -> Option<&str> {
        self.annotation(ANNOTATION_VERSION).or_else(|| {
            let image = &self.containers.get(MAIN_CONTAINER)?.image;
            let (_, tag) = split_tag(image);
            tag
        })
    }

    /// Sets the version annotation and the main container's image tag.
    pub(super) fn set_version(&mut self, version: &str) {
        self.annotate(ANNOTATION_VERSION, version);
        let name = self.metadata.name.clone();
        let container = self
            .containers
            .entry(MAIN_CONTAINER.into())
            .or_insert_with(|| Container {
                image: name,
                other: BTreeMap::new(),
            });
        let (repository, _) = split_tag(&container.image);
        container.image = format!("{repository}:{version}");
    }

    pub fn replicas(&self) -> Result<Option<u32>, BadAnnotation> {
        self.annotation(ANNOTATION_REPLICAS)
            .map(|r| {
                r.trim()
                    .parse()
                    .map_err(|_| BadAnnotation::Replicas(r.to_owned()))
            })
            .transpose()
    }

    /// `expiresAt` as Unix seconds.
    pub fn expires_at(&self) -> Result<Option<i64>, BadAnnotation> {
        self.annotation(ANNOTATION_EXPIRES_AT)
            .map(|t| {
                let t = t.trim();
                DateTime::parse_from_rfc3339(t)
                    .map(|d| d.timestamp())
                    .or_else(|_| t.parse::<i64>())
                    .map_err(|_| BadAnnotation::ExpiresAt(t.to_owned()))
            })
            .transpose()
    }

    /// The resources Paver knows the type of, in file order.
    pub fn resource_kinds(&self) -> Vec<ResourceKind> {
        let mut kinds: Vec<ResourceKind> = self
            .resources
            .values()
            .filter_map(|r| ResourceKind::ALL.into_iter().find(|k| k.as_str() == r.kind))
            .collect();
        kinds.dedup();
        kinds
    }

    pub fn has_resource(&self, kind: ResourceKind) -> bool {
        self.resources.values().any(|r| r.kind == kind.as_str())
    }

    /// Adds a resource of `kind` sized by the golden path (its `params`).
    pub(super) fn add_resource(&mut self, kind: ResourceKind, size: Option<&ResourceSize>) {
        if self.has_resource(kind) {
            return;
        }
        let mut name = kind.as_str().to_owned();
        let mut n = 2;
        while self.resources.contains_key(&name) {
            name = format!("{}-{n}", kind.as_str());
            n += 1;
        }
        let mut other = BTreeMap::new();
        if let Some(size) = size {
            let params: serde_norway::Mapping = size
                .params()
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
            other.insert("params".to_owned(), serde_norway::Value::Mapping(params));
        }
        self.resources.insert(
            name,
            ResourceSpec {
                kind: kind.as_str().into(),
                other,
            },
        );
    }

    /// Parses and checks a file's text; `path` names it in errors.
    pub fn parse(path: &str, text: &str, service: &ServiceName) -> Result<Self, DriverError> {
        let w: Workload = serde_norway::from_str(text).map_err(|e| {
            DriverError::Malformed(format!("{path} is malformed and needs fixing by hand: {e}"))
        })?;
        let bad = |what: String| {
            DriverError::Malformed(format!(
                "{path} is malformed and needs fixing by hand: {what}"
            ))
        };
        if w.api_version != SCORE_API_VERSION {
            return Err(bad(format!(
                "apiVersion is `{}`, expected {SCORE_API_VERSION}",
                w.api_version
            )));
        }
        if w.metadata.name != service.as_str() {
            return Err(bad(format!(
                "metadata.name is `{}`, expected {service}",
                w.metadata.name
            )));
        }
        w.replicas().map_err(|e| bad(e.to_string()))?;
        w.expires_at().map_err(|e| bad(e.to_string()))?;
        Ok(w)
    }

    pub fn render(&self) -> Result<String, DriverError> {
        let body = serde_norway::to_string(self).map_err(|e| {
            DriverError::Io(format!("cannot write workload {}: {e}", self.metadata.name))
        })?;
        Ok(format!("{FILE_HEADER}{body}"))
    }
}

/// An annotation of an environment file that does not hold what it should.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadAnnotation {
    #[error("paver.dev/replicas is `{0}`, not a number of replicas")]
    Replicas(String),
    #[error("paver.dev/expiresAt is `{0}`, not an RFC 3339 time")]
    ExpiresAt(String),
}

/// Splits `registry:5000/team/app:1.2` into the repository and the tag.
pub(super) fn split_tag(image: &str) -> (&str, Option<&str>) {
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].find(':') {
        Some(i) => (&image[..name_start + i], Some(&image[name_start + i + 1..])),
        None => (image, None),
    }
}

/// `services/<name>/catalog-info.yaml` of a scaffolded service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogInfo {
    pub api_version: String,
    pub kind: String,
    pub metadata: CatalogInfoMetadata,
    pub spec: ComponentSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogInfoMetadata {
    pub name: String,
    pub description: String,
    pub annotations: BTreeMap<String, String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub lifecycle: String,
    pub owner: String,
}
