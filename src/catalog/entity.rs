//! Raw Backstage entities: the envelope (`apiVersion`, `kind`, `metadata`,
//! `spec`, `relations`) as Backstage writes it, before typing.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One entity as read, with where it came from (for warnings).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEntity {
    pub api_version: String,
    pub kind: String,
    pub metadata: RawMetadata,
    #[serde(default)]
    pub spec: Value,
    #[serde(default)]
    pub relations: Vec<RawRelation>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RawMetadata {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub links: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawRelation {
    #[serde(rename = "type")]
    pub kind: String,
    pub target_ref: String,
}

/// A reference to another entity: `team-x`, `group:team-x`,
/// `group:default/team-x`. The kind defaults to what the field implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl EntityRef {
    pub fn parse(reference: &str, default_kind: &str) -> Option<Self> {
        let reference = reference.trim();
        let (kind, rest) = match reference.split_once(':') {
            Some((k, rest)) => (k.to_ascii_lowercase(), rest),
            None => (default_kind.to_owned(), reference),
        };
        let (namespace, name) = match rest.split_once('/') {
            Some((ns, n)) => (ns.to_owned(), n),
            None => ("default".to_owned(), rest),
        };
        if name.is_empty() || kind.is_empty() {
            return None;
        }
        Some(EntityRef {
            kind,
            namespace,
            name: name.to_owned(),
        })
    }
}

/// Splits a multi-document YAML text into documents and reads each one on
/// its own, so one broken document costs only itself. Returns the documents
/// with the line they start on, and a warning for each that did not parse.
pub fn parse_yaml_documents(text: &str) -> (Vec<(usize, Value)>, Vec<String>) {
    let mut docs = Vec::new();
    let mut warnings = Vec::new();
    let mut chunk = String::new();
    let mut chunk_start = 1;
    let mut flush = |chunk: &mut String, start: usize| {
        if chunk.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#')
        }) {
            chunk.clear();
            return;
        }
        match serde_norway::from_str::<Value>(chunk) {
            Ok(Value::Null) => {}
            Ok(v) => docs.push((start, v)),
            Err(e) => warnings.push(format!(
                "catalog document at line {start}: invalid YAML: {e}"
            )),
        }
        chunk.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let is_separator = line == "---" || line.starts_with("--- ") || line == "...";
        if is_separator {
            flush(&mut chunk, chunk_start);
            chunk_start = i + 2;
        } else {
            chunk.push_str(line);
            chunk.push('\n');
        }
    }
    flush(&mut chunk, chunk_start);
    (docs, warnings)
}

/// Reads raw entities out of JSON values, naming each one that is malformed.
pub fn parse_entities(
    values: impl IntoIterator<Item = (String, Value)>,
) -> (Vec<RawEntity>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (origin, value) in values {
        let label = describe(&value);
        match serde_json::from_value::<RawEntity>(value) {
            Ok(e) => out.push(e),
            Err(e) => warnings.push(format!("skipping {label} ({origin}): {e}")),
        }
    }
    (out, warnings)
}

/// A human name for a possibly broken entity: `Component order-service`.
fn describe(value: &Value) -> String {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("entity");
    match value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
    {
        Some(name) => format!("{kind} {name}"),
        None => format!("{kind} without a name"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_refs() {
        let r = EntityRef::parse("group:default/team-x", "group").unwrap();
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("group", "team-x"));
        let r = EntityRef::parse("team-y", "group").unwrap();
        assert_eq!(
            (r.kind.as_str(), r.namespace.as_str()),
            ("group", "default")
        );
        let r = EntityRef::parse("user:alice", "group").unwrap();
        assert_eq!(r.kind, "user");
        assert!(EntityRef::parse("group:", "group").is_none());
    }

    #[test]
    fn broken_documents_cost_only_themselves() {
        let text = "kind: A\nmetadata: {name: a}\n---\nkind: [unclosed\n---\n# only a comment\n---\nkind: B\nmetadata: {name: b}\n";
        let (docs, warnings) = parse_yaml_documents(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].0, 8);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("line 4"), "{}", warnings[0]);
    }
}
