//! Hybrid understanding: the rules parser answers first; the LLM is asked
//! only when the rules are unsure (or always, in `llm` mode), and whatever
//! it proposes goes through the same validation as a parse. Any failure of
//! the LLM falls back to the rules' answer, with one log line.

use std::time::{Duration, Instant};

use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
};
use chrono::NaiveDate;
use secrecy::SecretString;
use tokio::sync::Semaphore;
use url::Url;

use super::breaker::Breaker;
use super::client::{refuses_tools, CallError, LlmClient, Output, Usage};
use super::prompts::{Prompt, PromptError, Prompts};
use super::schema::proposal_schema;
use super::validate::{check, extract_json, Checked, Ground};
use crate::catalog::Catalog;
use crate::domain::{Action, ActionKind};
use crate::nlu::config::{LlmConfig, LlmMode, NluMode};
use crate::nlu::rules::Mentions;
use crate::nlu::RulesParser;
use crate::util::metrics;

/// Everything about the LLM that is not the prompts.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    pub base_url: Url,
    pub api_key: Option<SecretString>,
    pub model: String,
    pub mode: LlmMode,
    /// For one message: every call, the repair and a Retry-After wait.
    pub timeout: Duration,
    pub max_concurrency: usize,
    pub max_tokens: u32,
    pub temperature: f32,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub max_retry_wait: Duration,
    pub long_message_words: usize,
}

impl LlmSettings {
    /// The defaults of `[llm]` for this server and model.
    pub fn new(base_url: Url, model: impl Into<String>) -> Self {
        let d = LlmConfig::default();
        LlmSettings {
            base_url,
            api_key: None,
            model: model.into(),
            mode: d.mode,
            timeout: Duration::from_secs_f64(d.timeout_secs),
            max_concurrency: d.max_concurrency,
            max_tokens: d.max_tokens,
            temperature: d.temperature,
            breaker_failures: d.breaker_failures,
            breaker_cooldown: Duration::from_secs(d.breaker_cooldown_secs),
            max_retry_wait: Duration::from_secs_f64(d.max_retry_wait_secs),
            long_message_words: d.long_message_words,
        }
    }

    /// `None` when no LLM is configured.
    pub fn from_config(c: &LlmConfig) -> Option<Self> {
        let (base_url, model) = (c.base_url.clone()?, c.model.clone()?);
        Some(LlmSettings {
            base_url,
            api_key: c.api_key.clone(),
            model,
            mode: c.mode,
            timeout: Duration::from_secs_f64(c.timeout_secs.max(0.001)),
            max_concurrency: c.max_concurrency.max(1),
            max_tokens: c.max_tokens.max(1),
            temperature: c.temperature,
            breaker_failures: c.breaker_failures,
            breaker_cooldown: Duration::from_secs(c.breaker_cooldown_secs),
            max_retry_wait: Duration::from_secs_f64(c.max_retry_wait_secs.max(0.0)),
            long_message_words: c.long_message_words,
        })
    }
}

/// Who answers first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// The rules parser; the LLM only when the rules are unsure.
    RulesFirst,
    /// The LLM for every message; the rules when it fails.
    LlmFirst,
}

/// Which path gave the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NluPath {
    /// The rules parser (the LLM was not asked, or its answer added nothing).
    Rules,
    /// The LLM's validated proposal.
    Llm,
    /// The LLM was asked and failed; the rules parser answered.
    Fallback,
}

impl NluPath {
    pub fn as_str(self) -> &'static str {
        match self {
            NluPath::Rules => "rules",
            NluPath::Llm => "llm",
            NluPath::Fallback => "rules_fallback",
        }
    }
}

/// An answer and how it was reached: what is recorded on each request.
#[derive(Debug, Clone, PartialEq)]
pub struct Understanding {
    pub action: Action,
    pub path: NluPath,
    pub latency: Duration,
    /// Calls made to the LLM (a repair or a retry after a 429 counts).
    pub llm_calls: u32,
    pub usage: Usage,
    pub prompt_version: Option<String>,
    pub model: Option<String>,
    /// Why the LLM's answer was not used, when it failed.
    pub error: Option<String>,
}

impl Understanding {
    pub fn rules(action: Action, latency: Duration) -> Self {
        Understanding {
            action,
            path: NluPath::Rules,
            latency,
            llm_calls: 0,
            usage: Usage::default(),
            prompt_version: None,
            model: None,
            error: None,
        }
    }

    /// The rules parser alone (no LLM configured).
    pub fn by_rules(rules: &RulesParser, text: &str) -> Self {
        let t0 = Instant::now();
        let action = rules.parse(text).action;
        Understanding::rules(action, t0.elapsed())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("--nlu llm: no LLM is configured (set llm.base_url and llm.model, or PAVER_LLM__BASE_URL and PAVER_LLM__MODEL)")]
    NotConfigured,
    #[error("building the LLM client: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Prompts(#[from] PromptError),
}

/// Why the LLM gave nothing usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum Failure {
    #[error("circuit breaker open for {:.1}s more", .0.as_secs_f64())]
    Open(Duration),
    #[error("no free LLM slot within the time limit")]
    Busy,
    #[error("{0}")]
    Call(CallError),
    #[error("the model refused: {0}")]
    Refused(String),
    #[error("the model gave an empty answer")]
    Empty,
    #[error("invalid answer after one repair: {0}")]
    Invalid(String),
    /// Prompts are checked when they load, so this is a bug, not a typo.
    #[error("the prompt did not render: {0}")]
    Prompt(String),
}

impl Failure {
    /// The failure as a metric label.
    fn kind(&self) -> &'static str {
        match self {
            Failure::Open(_) => "breaker_open",
            Failure::Busy => "busy",
            Failure::Call(e) => e.kind(),
            Failure::Refused(_) => "model_refused",
            Failure::Empty => "empty",
            Failure::Invalid(_) => "invalid",
            Failure::Prompt(_) => "prompt",
        }
    }
}

/// The LLM side of understanding; shared by the CLI and the engine.
pub struct Understander {
    client: LlmClient,
    prompts: Prompts,
    settings: LlmSettings,
    routing: Routing,
    breaker: Breaker,
    slots: Semaphore,
    today: Option<NaiveDate>,
}

impl std::fmt::Debug for Understander {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Understander")
            .field("client", &self.client)
            .field("routing", &self.routing)
            .finish()
    }
}

fn system(text: String) -> ChatCompletionRequestMessage {
    ChatCompletionRequestSystemMessage::from(text).into()
}

fn user(text: &str) -> ChatCompletionRequestMessage {
    ChatCompletionRequestUserMessage::from(text).into()
}

fn assistant(text: &str) -> ChatCompletionRequestMessage {
    ChatCompletionRequestAssistantMessage::from(text).into()
}

/// What JSON mode adds to the prompt: the schema, since the request does
/// not carry it.
fn json_instruction() -> String {
    format!(
        "\nAnswer with one JSON object and nothing else. It must match this JSON Schema:\n{}",
        proposal_schema()
    )
}

const SCAFFOLD_WORDS: [&str; 9] = [
    "new",
    "scaffold",
    "bootstrap",
    "template",
    "skeleton",
    "microservice",
    "generate",
    "spin",
    "start",
];

impl Understander {
    pub fn new(
        settings: LlmSettings,
        prompts: Prompts,
        routing: Routing,
    ) -> Result<Self, LlmError> {
        let client = LlmClient::new(
            &settings.base_url,
            settings.api_key.clone(),
            settings.model.clone(),
            settings.mode,
            settings.max_tokens,
            settings.temperature,
            "understand",
        )?;
        Ok(Understander {
            client,
            prompts,
            breaker: Breaker::new(settings.breaker_failures, settings.breaker_cooldown),
            slots: Semaphore::new(settings.max_concurrency.max(1)),
            settings,
            routing,
            today: None,
        })
    }

    /// The understander `mode` asks for: `None` for `rules`, and for `auto`
    /// when no LLM is configured; an error for `llm` without one.
    pub fn from_config(config: &LlmConfig, mode: NluMode) -> Result<Option<Self>, LlmError> {
        let routing = match mode {
            NluMode::Rules => return Ok(None),
            NluMode::Llm => Routing::LlmFirst,
            NluMode::Auto => Routing::RulesFirst,
        };
        let Some(settings) = LlmSettings::from_config(config) else {
            return match mode {
                NluMode::Llm => Err(LlmError::NotConfigured),
                _ => Ok(None),
            };
        };
        let prompts = Prompts::load(config.prompts_dir.as_deref())?;
        Ok(Some(Understander::new(settings, prompts, routing)?))
    }

    /// Fixes "today" (tests).
    pub fn with_today(mut self, today: NaiveDate) -> Self {
        self.today = Some(today);
        self
    }

    pub fn routing(&self) -> Routing {
        self.routing
    }

    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// One line for logs and reports: where, which model, how.
    pub fn describe(&self) -> String {
        format!(
            "model {} at {} (mode {}, prompts {} from {})",
            self.client.model,
            self.client.endpoint(),
            self.client.mode().as_str(),
            self.prompts.understand.version,
            self.prompts
                .source
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "the binary".into())
        )
    }

    /// Whether the rules' answer is unsure enough to ask the LLM: a
    /// clarification, a long message read as nothing (unless the rules are
    /// sure of it: "do NOT roll back X, the fix is out" is a refusal, and a
    /// model asked about it read it as the rollback), or a parse whose
    /// confidence (the evidence for it and its lead over the next reading)
    /// is below [`Parsed::SURE_AT`](crate::nlu::Parsed::SURE_AT).
    fn rules_unsure(&self, parsed: &crate::nlu::Parsed, text: &str) -> bool {
        match &parsed.action {
            // A question for what the message plainly lacks is sure: no
            // model can find what is not there.
            Action::Clarify { .. } => !parsed.sure,
            Action::Nothing => {
                !parsed.sure && text.split_whitespace().count() >= self.settings.long_message_words
            }
            _ => !parsed.sure || parsed.confidence < crate::nlu::Parsed::SURE_AT,
        }
    }

    /// Whether understanding `text` will ask the LLM, known before asking
    /// (so chat can show a sign of life first): always when the LLM answers
    /// first, when the rules are unsure in `auto`; never while the circuit
    /// breaker is open.
    pub fn will_ask(&self, rules: &RulesParser, text: &str) -> bool {
        self.breaker.check().is_ok()
            && (self.routing == Routing::LlmFirst || self.rules_unsure(&rules.parse(text), text))
    }

    /// Understands one message.
    pub async fn understand(
        &self,
        rules: &RulesParser,
        catalog: &Catalog,
        text: &str,
    ) -> Understanding {
        let t0 = Instant::now();
        let parsed = rules.parse(text);
        let mut u = Understanding::rules(parsed.action.clone(), Duration::ZERO);
        if self.routing == Routing::RulesFirst && !self.rules_unsure(&parsed, text) {
            u.latency = t0.elapsed();
            return u;
        }
        let mentions = rules.mentions(text);
        let scaffoldish = matches!(
            &parsed.action,
            Action::ScaffoldService { .. }
                | Action::Clarify {
                    intent: Some(ActionKind::ScaffoldService),
                    ..
                }
        );
        let prompt = &self.prompts.understand;
        let rendered = self.render(prompt, rules, catalog, &mentions, None, scaffoldish, text);
        let ground = Ground {
            index: rules.index(),
            mentions: &mentions,
            context: None,
            text,
        };
        let (result, usage, calls) = self.ask_rendered(rendered, &ground).await;
        u.llm_calls = calls;
        u.usage = usage;
        u.prompt_version = Some(prompt.version.clone());
        u.model = Some(self.client.model.clone());
        match result {
            Ok(action) => {
                let better = match self.routing {
                    Routing::LlmFirst => true,
                    // A clarification or a shrug adds nothing to the rules'
                    // answer, except where the rules saw no request at all.
                    Routing::RulesFirst => match action.kind() {
                        ActionKind::Nothing => false,
                        ActionKind::Clarify => parsed.action == Action::Nothing,
                        _ => true,
                    },
                };
                if better {
                    u.action = action;
                    u.path = NluPath::Llm;
                }
            }
            Err(f) => {
                tracing::warn!(model = %self.client.model, error = %f, "LLM understanding failed; answering with the rules parser");
                metrics::llm_fallback(self.client.purpose(), f.kind());
                u.path = NluPath::Fallback;
                u.error = Some(f.to_string());
            }
        }
        u.latency = t0.elapsed();
        u
    }

    /// Reads a reply in the thread of the proposal `base` with the LLM
    /// (after the rules could not). The answer is the whole amended action,
    /// `none` when the reply changes nothing; on failure, `none` with the
    /// `Fallback` path.
    pub async fn amend(
        &self,
        rules: &RulesParser,
        catalog: &Catalog,
        base: &Action,
        text: &str,
    ) -> Understanding {
        let t0 = Instant::now();
        let mentions = rules.mentions(text);
        let prompt = &self.prompts.amend;
        let rendered = self.render(
            prompt,
            rules,
            catalog,
            &mentions,
            Some(base),
            base.kind() == ActionKind::ScaffoldService,
            text,
        );
        let ground = Ground {
            index: rules.index(),
            mentions: &mentions,
            context: Some(base),
            text,
        };
        let (result, usage, calls) = self.ask_rendered(rendered, &ground).await;
        let mut u = Understanding::rules(Action::Nothing, Duration::ZERO);
        u.llm_calls = calls;
        u.usage = usage;
        u.prompt_version = Some(prompt.version.clone());
        u.model = Some(self.client.model.clone());
        match result {
            Ok(action) => {
                u.action = action;
                u.path = NluPath::Llm;
            }
            Err(f) => {
                tracing::warn!(model = %self.client.model, error = %f, "LLM could not read a follow-up; leaving the proposal as it is");
                metrics::llm_fallback(self.client.purpose(), f.kind());
                u.path = NluPath::Fallback;
                u.error = Some(f.to_string());
            }
        }
        u.latency = t0.elapsed();
        u
    }

    /// The system and user messages of `prompt` for one message.
    #[allow(clippy::too_many_arguments)]
    fn render(
        &self,
        prompt: &Prompt,
        rules: &RulesParser,
        catalog: &Catalog,
        m: &Mentions,
        context: Option<&Action>,
        scaffoldish: bool,
        text: &str,
    ) -> Result<(String, String), Failure> {
        let today = self
            .today
            .unwrap_or_else(|| chrono::Utc::now().date_naive())
            .format("%Y-%m-%d (%A)")
            .to_string();
        let index = rules.index();
        // The candidate services: what the message names (or nearly names),
        // the proposal's service, else the few names closest to its words.
        let mut names: Vec<crate::domain::ServiceName> = Vec::new();
        fn add(names: &mut Vec<crate::domain::ServiceName>, n: &crate::domain::ServiceName) {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        if let Some(s) = context.and_then(Action::service) {
            add(&mut names, s);
        }
        for n in m
            .exact
            .iter()
            .chain(&m.fuzzy)
            .chain(&m.ambiguous)
            .chain(&m.near)
        {
            add(&mut names, n);
        }
        if names.is_empty() {
            let mut scored: Vec<(f64, &crate::domain::ServiceName)> = catalog
                .components()
                .map(|c| {
                    let best = m
                        .words
                        .iter()
                        .filter(|w| w.len() >= 3)
                        .map(|w| {
                            let first = c.name.as_str().split('-').next().unwrap_or("");
                            strsim::jaro_winkler(w, c.name.as_str())
                                .max(strsim::jaro_winkler(w, first))
                        })
                        .fold(0.0, f64::max);
                    (best, &c.name)
                })
                .filter(|(s, _)| *s >= 0.85)
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            for (_, n) in scored.into_iter().take(5) {
                add(&mut names, n);
            }
        }
        let services = if names.is_empty() {
            "(none named)".to_owned()
        } else {
            names
                .iter()
                .map(|n| {
                    let c = catalog.component(n.as_str());
                    let owner = c
                        .and_then(|c| c.owner.as_ref())
                        .map(|o| o.to_string())
                        .unwrap_or_else(|| "no owner".into());
                    let desc: String = c
                        .and_then(|c| c.description.clone())
                        .unwrap_or_default()
                        .chars()
                        .take(60)
                        .collect();
                    format!("- {n} — {owner} — {desc}")
                        .trim_end_matches([' ', '—'])
                        .to_owned()
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let scaffoldish =
            scaffoldish || m.words.iter().any(|w| SCAFFOLD_WORDS.contains(&w.as_str()));
        // Templates and teams on one line each: only what this message may need.
        let templates = if scaffoldish {
            let words: Vec<&str> = m.words.iter().map(String::as_str).collect();
            let list = match index.template(&words) {
                Ok(t) => vec![t.to_string()],
                Err(c) => c,
            };
            list.iter()
                .map(|t| {
                    let desc = catalog
                        .templates()
                        .find(|x| x.name.as_str() == t)
                        .and_then(|x| x.title.clone().or(x.description.clone()))
                        .unwrap_or_default();
                    if desc.is_empty() {
                        t.clone()
                    } else {
                        format!("{t} ({desc})")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            "(not needed)".to_owned()
        };
        let teams = if m.teams.is_empty() {
            "(none)".to_owned()
        } else {
            m.teams
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let schema = match self.client.mode() {
            LlmMode::Json => json_instruction(),
            _ => String::new(),
        };
        let proposal = context
            .map(|a| serde_json::json!({ "proposal": a }).to_string())
            .unwrap_or_default();
        let vars = [
            ("today", today.as_str()),
            ("services", &services),
            ("templates", &templates),
            ("teams", &teams),
            ("schema", &schema),
            ("proposal", &proposal),
            ("message", text),
        ];
        let filled = prompt
            .render(&vars)
            .and_then(|sys| Ok((sys, prompt.render_user(&vars)?)));
        filled.map_err(|e| Failure::Prompt(e.to_string()))
    }

    /// [`Self::ask`] with the rendered prompt; a prompt that did not render
    /// is a failure without a call.
    async fn ask_rendered(
        &self,
        rendered: Result<(String, String), Failure>,
        ground: &Ground<'_>,
    ) -> (Result<Action, Failure>, Usage, u32) {
        match rendered {
            Ok((system_prompt, user_prompt)) => self.ask(system_prompt, user_prompt, ground).await,
            Err(f) => (Err(f), Usage::default(), 0),
        }
    }

    /// Asks the model, repairs once, honours a short Retry-After once, all
    /// within the time limit. Returns the validated action (or why not), the
    /// tokens used and the number of calls made.
    async fn ask(
        &self,
        system_prompt: String,
        user_prompt: String,
        ground: &Ground<'_>,
    ) -> (Result<Action, Failure>, Usage, u32) {
        let mut usage = Usage::default();
        let mut calls = 0u32;
        if let Err(left) = self.breaker.check() {
            return (Err(Failure::Open(left)), usage, calls);
        }
        let timeout = self.settings.timeout;
        let deadline = Instant::now() + timeout;
        let _slot = match tokio::time::timeout(timeout, self.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => return (Err(Failure::Busy), usage, calls),
        };
        let mut messages = vec![system(system_prompt.clone()), user(&user_prompt)];
        let mut repaired = false;
        let mut waited = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.breaker.failure();
                return (Err(Failure::Call(CallError::Timeout)), usage, calls);
            }
            calls += 1;
            let answer = match tokio::time::timeout(
                left,
                self.client.complete(messages.clone(), left),
            )
            .await
            {
                Err(_) | Ok(Err(CallError::Timeout)) => {
                    self.breaker.failure();
                    return (Err(Failure::Call(CallError::Timeout)), usage, calls);
                }
                Ok(Err(CallError::RateLimited { retry_after })) => {
                    match retry_after {
                        Some(wait)
                            if !waited
                                && wait <= self.settings.max_retry_wait
                                && wait < deadline.saturating_duration_since(Instant::now()) =>
                        {
                            waited = true;
                            tracing::info!(
                                wait_ms = wait.as_millis() as u64,
                                "LLM rate limited; waiting as Retry-After asks"
                            );
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        Some(wait) => self.breaker.hold(wait),
                        None => {
                            self.breaker.failure();
                        }
                    }
                    return (
                        Err(Failure::Call(CallError::RateLimited { retry_after })),
                        usage,
                        calls,
                    );
                }
                Ok(Err(e)) if refuses_tools(&e) && self.client.fall_back_to_json() => {
                    tracing::warn!(error = %e, "the LLM server refuses tool calls; asking in JSON mode from now on (set llm.mode to choose)");
                    messages[0] = system(format!("{system_prompt}{}", json_instruction()));
                    continue;
                }
                Ok(Err(e)) => {
                    self.breaker.failure();
                    return (Err(Failure::Call(e)), usage, calls);
                }
                Ok(Ok(c)) => c,
            };
            self.breaker.success();
            usage.add(answer.usage);
            let raw = match answer.output {
                Output::ToolCall(a) => a,
                Output::Content(c) => c,
                Output::Refusal(r) => return (Err(Failure::Refused(r)), usage, calls),
                Output::Empty => return (Err(Failure::Empty), usage, calls),
            };
            let problem = match extract_json(&raw) {
                Ok(v) => match check(&v, ground) {
                    Checked::Valid(action) => return (Ok(action), usage, calls),
                    Checked::Violation(p) => p,
                },
                Err(e) => e.to_string(),
            };
            if repaired {
                return (Err(Failure::Invalid(problem)), usage, calls);
            }
            repaired = true;
            tracing::debug!(problem = %problem, "asking the model to repair its answer");
            messages.push(assistant(&raw));
            let repair = match self
                .prompts
                .repair
                .render_user(&[("error", problem.as_str())])
            {
                Ok(r) => r,
                Err(e) => return (Err(Failure::Prompt(e.to_string())), usage, calls),
            };
            messages.push(user(&repair));
        }
    }
}
