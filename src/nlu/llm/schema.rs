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
    /// The one platform action the message asks for, in the typed action
    /// contract: `action` names it and the other keys are its fields. Use
    /// `clarify` with the `missing` field names when something required was
    /// not said, and `none` when the message is not a request.
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
        obj.remove("title");
    }
    // Inlining repeats each type's doc comment wherever it is used; keep the
    // descriptions of the proposal and of each action only (a third of the
    // tokens, which matters to a small local model's context).
    if let Some(proposal) = value.pointer_mut("/properties/proposal") {
        if let Some(variants) = proposal.get_mut("oneOf").and_then(Value::as_array_mut) {
            for v in variants {
                let keep = v.get("description").cloned();
                strip_descriptions(v);
                flatten_any_of(v);
                if let (Some(d), Some(obj)) = (keep, v.as_object_mut()) {
                    obj.insert("description".into(), d);
                }
            }
        }
    }
    value
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

fn strip_descriptions(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            obj.remove("description");
            obj.values_mut().for_each(strip_descriptions);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// A one-line description of the tool, for the model.
pub const TOOL_DESCRIPTION: &str =
    "Propose the one platform action the user's message asks for. The proposal is validated and shown to a human for confirmation; nothing runs without it.";

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
            text.len() < 6000,
            "compact enough for a small model: {}",
            text.len()
        );
        assert!(s["properties"]["proposal"]["description"].is_string());
    }
}
