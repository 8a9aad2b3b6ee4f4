//! The `[nlu]` and `[llm]` sections of the configuration: which
//! understanding to use, and how to reach and ask the model.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// Which understanding to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NluMode {
    /// The rules parser only.
    Rules,
    /// The configured LLM only.
    Llm,
    /// The LLM when one is configured, the rules parser otherwise.
    #[default]
    Auto,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NluConfig {
    #[serde(default)]
    pub mode: NluMode,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// The OpenAI-compatible API base, with its version path
    /// (`https://api.openai.com/v1`, `http://localhost:11434/v1`).
    pub base_url: Option<Url>,
    pub api_key: Option<SecretString>,
    pub api_key_file: Option<PathBuf>,
    pub model: Option<String>,
    /// How the model is asked for a structured answer.
    pub mode: LlmMode,
    /// Time limit for understanding one message with the LLM (all calls,
    /// a repair and a Retry-After wait included), in seconds.
    pub timeout_secs: f64,
    /// Calls in flight at once; more wait for a slot (within the time limit).
    pub max_concurrency: usize,
    /// Upper bound of the model's answer, in tokens.
    pub max_tokens: u32,
    pub temperature: f32,
    /// Folder with the prompt files (`understand.md`, `amend.md`,
    /// `repair.md`); default `prompts/` when present, else the built-in ones.
    pub prompts_dir: Option<PathBuf>,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker keeps Paver from calling the server, in seconds.
    pub breaker_cooldown_secs: u64,
    /// The longest `Retry-After` Paver waits out within one message before
    /// falling back (longer ones just hold the breaker open), in seconds.
    pub max_retry_wait_secs: f64,
    /// In `auto`, a message the rules parser reads as `none` goes to the LLM
    /// when it has at least this many words.
    pub long_message_words: usize,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            base_url: None,
            api_key: None,
            api_key_file: None,
            model: None,
            mode: LlmMode::default(),
            timeout_secs: 20.0,
            max_concurrency: 4,
            max_tokens: 512,
            temperature: 0.0,
            prompts_dir: None,
            breaker_failures: 3,
            breaker_cooldown_secs: 30,
            max_retry_wait_secs: 5.0,
            long_message_words: 6,
        }
    }
}

/// How the model is asked for a structured answer. Servers differ: OpenAI
/// and vLLM do all three; llama.cpp's server does `json_schema` and `json`;
/// Ollama does `tools` (without forcing) and `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LlmMode {
    /// A `propose_action` tool whose parameters are the action schema, and
    /// `tool_choice` forcing it. An answer in the message content instead
    /// (servers that ignore `tool_choice`) is read too.
    #[default]
    Tools,
    /// `response_format: {"type": "json_schema"}` with the action schema.
    JsonSchema,
    /// `response_format: {"type": "json_object"}`; the schema goes in the prompt.
    Json,
}

impl LlmMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LlmMode::Tools => "tools",
            LlmMode::JsonSchema => "json_schema",
            LlmMode::Json => "json",
        }
    }
}

impl LlmConfig {
    pub fn is_configured(&self) -> bool {
        self.base_url.is_some() && self.model.is_some()
    }
}
