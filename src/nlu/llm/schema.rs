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
    value
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
        assert!(!text.contains("intent"), "internal fields stay out");
    }
}
