//! Understanding with an LLM behind any OpenAI-compatible API.
//!
//! The model only ever proposes: it is given the action schema (generated
//! from [`crate::domain::Action`]), the message, the relevant slice of the
//! catalog and today's date, and answers with one proposed action. That
//! answer is validated like a rules parse ([`validate`]); nothing it says
//! runs without the confirmation card. The rules parser answers first in
//! `auto` ([`Understander`]), and every failure falls back to it.

pub mod breaker;
pub mod client;
pub mod prompts;
pub mod schema;
pub mod understand;
pub mod validate;

pub use client::{LlmClient, Usage};
pub use prompts::{Prompt, Prompts};
pub use schema::{proposal_schema, TOOL_NAME};
pub use understand::{LlmError, LlmSettings, NluPath, Routing, Understander, Understanding};
