//! The schema the model answers in, generated from the Rust types with
//! `schemars` (never written by hand): a change to [`Action`] changes what
//! the model is asked for.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::Value;

use crate::domain::Action;

/// The name of the one tool the model is offered (and of the JSON schema
/// in `json_schema` mode).
pub const TOOL_NAME: &str = "propose_action";

/// What the model answers: one proposed action. Wrapped in an object because
/// tool parameters and structured outputs must be a JSON object at the top.
#[derive(Debug, Clone, JsonSchema)]
#[allow(dead_code)]
pub struct Proposal {
    /// One action: `action` names it, the other keys are its fields.
    pub proposal: Action,
}

/// The JSON Schema of [`Proposal`], sub-schemas inlined (some local servers
/// turn schemas into grammars and do not follow `$ref`).
pub fn proposal_schema() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let schema = generator.into_root_schema_for::<Proposal>();
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        // The wrapper's doc comment is for Paver's readers, not the model.
        obj.remove("title");
        obj.remove("description");
    }
    // Every token of the schema is read by the model for every message
    // (a tool's parameters are part of the prompt), so it is made small:
    // the actions' variants become one object, `action` an enum of their
    // names and the other keys the union of their fields, without
    // descriptions (the prompt lists which action takes which fields, and
    // validation holds each to them, asking for one repair). About a
    // seventh of the variants' size.
    if let Some(proposal) = value.pointer_mut("/properties/proposal") {
        flatten_variants(proposal);
    }
    value
}

/// `{"oneOf": [variant, …]}` (each an object with a constant `action` and
/// its fields) → one object: `action` an enum of the names, the fields'
/// union optional, nothing described (the prompt's table says which
/// action takes which fields).
fn flatten_variants(proposal: &mut Value) {
    let Some(Value::Array(variants)) = proposal.as_object_mut().and_then(|o| o.remove("oneOf"))
    else {
        return;
    };
    let mut actions: Vec<Value> = Vec::new();
    let mut fields = serde_json::Map::new();
    for mut v in variants {
        strip_descriptions(&mut v);
        flatten_any_of(&mut v);
        let Some(Value::Object(props)) = v.get("properties") else {
            continue;
        };
        for (k, schema) in props {
            if k == "action" {
                match (schema.get("const"), schema.get("enum")) {
                    (Some(c), _) => actions.push(c.clone()),
                    (None, Some(Value::Array(names))) => actions.extend(names.iter().cloned()),
                    _ => {}
                }
            } else {
                fields.entry(k.clone()).or_insert_with(|| schema.clone());
            }
        }
    }
    let mut props = serde_json::Map::new();
    props.insert("action".into(), serde_json::json!({ "enum": actions }));
    props.extend(fields);
    // `missing` names fields: the prompt's table lists them, and validation
    // reads the names it knows; an enum of them here only costs tokens.
    if let Some(items) = props
        .get_mut("missing")
        .and_then(|m| m.get_mut("items"))
        .and_then(Value::as_object_mut)
    {
        items.remove("enum");
        items.insert("type".into(), "string".into());
    }
    *proposal = serde_json::json!({
        "type": "object",
        "properties": props,
        "required": ["action"],
    });
}

/// `scorecard`'s target is "a service or a team" (an untagged enum, so an
/// `anyOf` of two objects beside `action`). Grammar-constrained decoders
/// (llama.cpp) handle that badly; offer both keys as optional properties
/// instead. Validation still takes exactly one.
fn flatten_any_of(v: &mut Value) {
    let Some(obj) = v.as_object_mut() else { return };
    let Some(Value::Array(alternatives)) = obj.remove("anyOf") else {
        return;
    };
    let props = obj
        .entry("properties")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(props) = props {
        for alt in alternatives {
            if let Some(Value::Object(p)) = alt.get("properties") {
                for (k, schema) in p {
                    props.entry(k.clone()).or_insert_with(|| schema.clone());
                }
            }
        }
    }
}

/// Descriptions, the integer `format`s (`uint32`) only Rust cares about,
/// and the `type` of an enum of strings (the names say it).
fn strip_descriptions(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            obj.remove("description");
            if obj.get("type").and_then(Value::as_str) == Some("integer") {
                obj.remove("format");
            }
            if obj.contains_key("enum") && obj.get("type").and_then(Value::as_str) == Some("string")
            {
                obj.remove("type");
            }
            // An optional field is left out, never null: `["string",
            // "null"]` is `"string"` to the model.
            if let Some(Value::Array(types)) = obj.get("type") {
                let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                if let [one] = kept.as_slice() {
                    obj.insert("type".into(), one.clone());
                }
            }
            obj.values_mut().for_each(strip_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// A one-line description of the tool, for the model.
pub const TOOL_DESCRIPTION: &str =
    "Propose the one platform action the message asks for; a human confirms it.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_comes_from_the_types() {
        let s = proposal_schema();
        assert_eq!(s["type"], "object");
        assert_eq!(s["required"], serde_json::json!(["proposal"]));
        let text = s.to_string();
        for name in [
            "create_environment",
            "destroy_environment",
            "add_resource",
            "deploy",
            "rollback",
            "promote",
            "scale",
            "restart",
            "scaffold_service",
            "status",
            "who_owns",
            "scorecard",
            "ask",
            "help",
            "none",
            "clarify",
            "opensearch",
            "preview",
        ] {
            assert!(text.contains(&format!("\"{name}\"")), "{name} missing");
        }
        assert!(!text.contains("$ref"), "sub-schemas are inlined");
        assert!(!text.contains("anyOf"), "the scorecard target is flattened");
        assert!(!text.contains("intent"), "internal fields stay out");
        assert!(
            text.len() < 1300,
            "compact enough for a small model: {}",
            text.len()
        );
        let proposal = &s["properties"]["proposal"];
        assert_eq!(
            proposal["properties"]["action"]["enum"]
                .as_array()
                .unwrap()
                .len(),
            16
        );
        for field in [
            "service",
            "environment",
            "resources",
            "version",
            "from",
            "to",
            "replicas",
            "name",
            "template",
            "owner",
            "team",
            "question",
            "missing",
            "candidates",
        ] {
            assert!(
                proposal["properties"].get(field).is_some(),
                "{field} missing"
            );
        }
        assert!(
            !text.contains("null"),
            "optional fields are left out, not null"
        );
        assert!(
            !text.contains("description"),
            "the prompt describes, not the schema"
        );
    }
}
