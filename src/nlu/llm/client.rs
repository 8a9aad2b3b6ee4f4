//! One chat completion against any OpenAI-compatible server.
//!
//! Requests are built from `async-openai`'s wire types (so what Paver sends
//! is the OpenAI chat completions format, checked by the compiler). They are
//! sent with Paver's own `reqwest` client rather than `async_openai::Client`,
//! because Paver needs what that client hides: the `Retry-After` header of a
//! 429, the status of a 5xx (it retries both by itself, with its own
//! backoff), one time budget for the whole exchange, and a plain `http://`
//! base URL with no key for a local server. Answers are read leniently: local
//! servers omit fields OpenAI always sends.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_openai::types::chat::{
    ChatCompletionNamedToolChoice, ChatCompletionRequestMessage, ChatCompletionTool,
    ChatCompletionToolChoiceOption, ChatCompletionTools, CreateChatCompletionRequest, FunctionName,
    FunctionObject, ResponseFormat, ResponseFormatJsonSchema,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use super::schema::{proposal_schema, TOOL_DESCRIPTION, TOOL_NAME};
use crate::nlu::config::LlmMode;
use crate::util::metrics::LlmCall;

/// Why a call gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("timed out")]
    Timeout,
    #[error("rate limited (429){}", retry_after.map(|d| format!(", retry after {:.1}s", d.as_secs_f64())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("server error {status}: {body}")]
    Server { status: u16, body: String },
    #[error("request refused with {status}: {body}")]
    Client { status: u16, body: String },
    #[error("cannot reach the server: {0}")]
    Transport(String),
    #[error("the server's answer is not a chat completion: {0}")]
    BadBody(String),
}

impl CallError {
    /// The failure as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout => "timeout",
            CallError::RateLimited { .. } => "rate_limited",
            CallError::Server { .. } => "server_error",
            CallError::Client { .. } => "refused",
            CallError::Transport(_) => "unreachable",
            CallError::BadBody(_) => "bad_answer",
        }
    }
}

/// What the model said.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A call of the proposal tool (arguments as the model wrote them).
    ToolCall(String),
    /// Text in the message content (JSON modes, or servers that answer a
    /// forced tool call in the content).
    Content(String),
    /// The model declined.
    Refusal(String),
    /// Nothing usable: no content, no tool call.
    Empty,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub output: Output,
    pub usage: Usage,
}

/// The chat completions endpoint of one server and model.
pub struct LlmClient {
    http: reqwest::Client,
    endpoint: Url,
    api_key: Option<SecretString>,
    pub model: String,
    /// The [`LlmMode`] in use (it can fall back from `tools` to `json`).
    mode: AtomicU8,
    max_tokens: u32,
    temperature: f32,
    /// What the calls are for, as the metrics label them.
    purpose: &'static str,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("model", &self.model)
            .field("mode", &self.mode())
            .field("api_key", &self.api_key.as_ref().map(|_| "set"))
            .finish()
    }
}

/// `{base_url}/chat/completions`, keeping the version path of the base.
pub fn endpoint(base_url: &Url) -> Url {
    under(base_url, "chat/completions")
}

/// `{base_url}/{path}` for an OpenAI-compatible server: the base's own path
/// (`/v1`) kept, whether or not it ends in `/`.
pub fn under(base_url: &Url, path: &str) -> Url {
    let mut base = base_url.clone();
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    base.join(path).expect("a relative path joins")
}

impl LlmClient {
    pub fn new(
        base_url: &Url,
        api_key: Option<SecretString>,
        model: String,
        mode: LlmMode,
        max_tokens: u32,
        temperature: f32,
        purpose: &'static str,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("paver/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(LlmClient {
            http,
            endpoint: endpoint(base_url),
            api_key: api_key.filter(|k| !k.expose_secret().is_empty()),
            model,
            mode: AtomicU8::new(mode_code(mode)),
            max_tokens,
            temperature,
            purpose,
        })
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// What the calls are for (`understand`, `docs`), as metrics label them.
    pub fn purpose(&self) -> &'static str {
        self.purpose
    }

    pub fn mode(&self) -> LlmMode {
        match self.mode.load(Ordering::Relaxed) {
            0 => LlmMode::Tools,
            1 => LlmMode::JsonSchema,
            _ => LlmMode::Json,
        }
    }

    /// A server that refuses tool calls is asked in JSON mode from then on;
    /// true when this call made the switch.
    pub fn fall_back_to_json(&self) -> bool {
        self.mode
            .compare_exchange(
                mode_code(LlmMode::Tools),
                mode_code(LlmMode::Json),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// The request body for these messages in this client's mode.
    #[allow(deprecated)]
    pub fn request(
        &self,
        messages: Vec<ChatCompletionRequestMessage>,
    ) -> CreateChatCompletionRequest {
        let mut req = CreateChatCompletionRequest {
            model: self.model.clone(),
            messages,
            temperature: Some(self.temperature),
            // `max_tokens` is what every compatible server reads; it also
            // stops a forced tool call that would run away.
            max_tokens: Some(self.max_tokens),
            ..Default::default()
        };
        match self.mode() {
            LlmMode::Tools => {
                req.tools = Some(vec![ChatCompletionTools::Function(ChatCompletionTool {
                    function: FunctionObject {
                        name: TOOL_NAME.into(),
                        description: Some(TOOL_DESCRIPTION.into()),
                        parameters: Some(proposal_schema()),
                        strict: None,
                    },
                })]);
                req.tool_choice = Some(ChatCompletionToolChoiceOption::Function(
                    ChatCompletionNamedToolChoice {
                        function: FunctionName {
                            name: TOOL_NAME.into(),
                        },
                    },
                ));
            }
            LlmMode::JsonSchema => {
                req.response_format = Some(ResponseFormat::JsonSchema {
                    json_schema: ResponseFormatJsonSchema {
                        description: Some(TOOL_DESCRIPTION.into()),
                        name: TOOL_NAME.into(),
                        schema: Some(proposal_schema()),
                        strict: None,
                    },
                });
            }
            LlmMode::Json => req.response_format = Some(ResponseFormat::JsonObject),
        }
        req
    }

    /// One call; no retries here (the caller owns the time budget). Every
    /// call is counted and timed, one the caller's time limit cancels too.
    pub async fn complete(
        &self,
        messages: Vec<ChatCompletionRequestMessage>,
        timeout: Duration,
    ) -> Result<Completion, CallError> {
        let call = LlmCall::start(self.purpose);
        let result = self.call(messages, timeout).await;
        match &result {
            Ok(c) => call.answered(c.usage.prompt_tokens, c.usage.completion_tokens),
            Err(e) => call.failed(e.kind()),
        }
        result
    }

    async fn call(
        &self,
        messages: Vec<ChatCompletionRequestMessage>,
        timeout: Duration,
    ) -> Result<Completion, CallError> {
        let body = self.request(messages);
        let mut rb = self
            .http
            .post(self.endpoint.clone())
            .timeout(timeout)
            .json(&body);
        if let Some(key) = &self.api_key {
            rb = rb.bearer_auth(key.expose_secret());
        }
        let resp = rb.send().await.map_err(|e| {
            if e.is_timeout() {
                CallError::Timeout
            } else {
                CallError::Transport(without_url(&e))
            }
        })?;
        let status = resp.status();
        let retry_after = retry_after(resp.headers());
        let bytes = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                CallError::Timeout
            } else {
                CallError::Transport(without_url(&e))
            }
        })?;
        let text = || {
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(300)
                .collect::<String>()
        };
        if status.as_u16() == 429 {
            return Err(CallError::RateLimited { retry_after });
        }
        if status.is_server_error() {
            return Err(CallError::Server {
                status: status.as_u16(),
                body: text(),
            });
        }
        if !status.is_success() {
            return Err(CallError::Client {
                status: status.as_u16(),
                body: text(),
            });
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| CallError::BadBody(format!("{e}: {}", text())))?;
        read_completion(&value)
    }
}

fn mode_code(mode: LlmMode) -> u8 {
    match mode {
        LlmMode::Tools => 0,
        LlmMode::JsonSchema => 1,
        LlmMode::Json => 2,
    }
}

/// Whether a refused request was refused for its tools (a server without
/// tool support: llama.cpp's server without `--jinja`, older servers).
pub fn refuses_tools(err: &CallError) -> bool {
    match err {
        CallError::Client { status, body } | CallError::Server { status, body } => {
            matches!(status, 400 | 422 | 500 | 501) && body.to_lowercase().contains("tool")
        }
        _ => false,
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "the LLM endpoint");
    }
    s
}

/// `Retry-After` (seconds or an HTTP date), or OpenAI's `retry-after-ms`.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Reads the first choice of a chat completion, tolerating what local
/// servers leave out or spell differently (arguments as an object, no
/// `type` on a tool call, no usage).
pub fn read_completion(v: &Value) -> Result<Completion, CallError> {
    let usage = Usage {
        prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
    };
    let Some(choice) = v["choices"].as_array().and_then(|c| c.first()) else {
        if let Some(err) = v.get("error") {
            return Err(CallError::BadBody(format!("error object: {err}")));
        }
        return Err(CallError::BadBody("no choices".into()));
    };
    let msg = &choice["message"];
    if let Some(r) = msg["refusal"].as_str().filter(|r| !r.trim().is_empty()) {
        return Ok(Completion {
            output: Output::Refusal(r.to_owned()),
            usage,
        });
    }
    let call = msg["tool_calls"]
        .as_array()
        .and_then(|calls| calls.first())
        .map(|c| &c["function"])
        .or_else(|| msg.get("function_call").filter(|f| f.is_object()));
    if let Some(f) = call {
        let args = match &f["arguments"] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        if !args.trim().is_empty() {
            return Ok(Completion {
                output: Output::ToolCall(args),
                usage,
            });
        }
    }
    let content = match &msg["content"] {
        Value::String(s) => s.clone(),
        // Content parts: join their text.
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    };
    if choice["finish_reason"].as_str() == Some("content_filter") {
        return Ok(Completion {
            output: Output::Refusal("stopped by the content filter".into()),
            usage,
        });
    }
    let output = if content.trim().is_empty() {
        Output::Empty
    } else {
        Output::Content(content)
    };
    Ok(Completion { output, usage })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_keep_the_version_path() {
        for (base, want) in [
            (
                "https://api.openai.com/v1",
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                "http://localhost:11434/v1/",
                "http://localhost:11434/v1/chat/completions",
            ),
            (
                "http://127.0.0.1:8088/v1",
                "http://127.0.0.1:8088/v1/chat/completions",
            ),
        ] {
            assert_eq!(endpoint(&Url::parse(base).unwrap()).as_str(), want);
        }
    }

    #[test]
    fn reads_lenient_completions() {
        let c = read_completion(&json!({"choices": [{"message": {"tool_calls": [
            {"function": {"name": "propose_action", "arguments": {"proposal": {"action": "help"}}}}
        ]}}]}))
        .unwrap();
        assert_eq!(
            c.output,
            Output::ToolCall(r#"{"proposal":{"action":"help"}}"#.into())
        );
        let c = read_completion(
            &json!({"choices": [{"message": {"role": "assistant", "content": ""}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1}}),
        )
        .unwrap();
        assert_eq!(c.output, Output::Empty);
        assert_eq!(c.usage.total(), 6);
        let c =
            read_completion(&json!({"choices": [{"message": {"content": null, "refusal": "no"}}]}))
                .unwrap();
        assert_eq!(c.output, Output::Refusal("no".into()));
        assert!(read_completion(&json!({"foo": 1})).is_err());
    }

    #[test]
    fn retry_after_forms() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }
}
