//! Layered configuration: embedded defaults, then `config/paver.toml` (or
//! `--config`/`PAVER_CONFIG`), then `PAVER_<SECTION>__<KEY>` variables.
//!
//! Secrets are never read from the config file itself: they come from the
//! environment or from a file whose path the config names (`<key>_file`),
//! so the config can be committed and shown without leaking anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::drivers::DriverKind;
pub use crate::nlu::config::{LlmConfig, LlmMode, NluConfig, NluMode};
use crate::util::{redact_url, url_has_password};

/// The file used when neither `--config` nor `PAVER_CONFIG` names one.
pub const DEFAULT_PATH: &str = "config/paver.toml";

/// The database used when none is configured: a SQLite file of one's own,
/// for trying Paver out. Anything else may be shared with others.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://var/paver.db";

/// Keys whose values are secrets: allowed from the environment, or as
/// `<key>_file` in the config file, never inline.
pub const SECRET_KEYS: [(&str, &str); 15] = [
    ("catalog", "backstage_token"),
    ("slack", "bot_token"),
    ("slack", "signing_secret"),
    ("slack", "app_token"),
    ("discord", "token"),
    ("llm", "api_key"),
    ("backstage", "token"),
    ("argocd", "token"),
    ("argocd", "password"),
    ("orchestrator", "signing_secret"),
    ("orchestrator", "inbound_signing_secret"),
    ("hooks", "github_secret"),
    ("hooks", "argocd_secret"),
    ("hooks", "generic_secret"),
    ("hooks", "checks_secret"),
];

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub nlu: NluConfig,
    #[serde(default)]
    pub slack: SlackConfig,
    #[serde(default)]
    pub discord: DiscordConfig,
    #[serde(default)]
    pub llm: LlmConfig,
    #[serde(default)]
    pub policy: crate::policy::PolicyConfig,
    #[serde(default)]
    pub gitops: crate::drivers::gitops::GitOpsConfig,
    #[serde(default)]
    pub drivers: crate::drivers::router::DriversConfig,
    #[serde(default)]
    pub executor: crate::requests::executor::ExecutorConfig,
    #[serde(default)]
    pub backstage: crate::drivers::backstage::BackstageConfig,
    #[serde(default)]
    pub argocd: crate::drivers::argocd::ArgoCdConfig,
    #[serde(default)]
    pub orchestrator: crate::drivers::http::OrchestratorConfig,
    #[serde(default)]
    pub console: ConsoleConfig,
    #[serde(default)]
    pub hooks: HooksConfig,
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
    #[serde(default)]
    pub scorecards: crate::scorecards::ScorecardsConfig,
    /// The standard size of each resource type (over the built-in ones).
    #[serde(default)]
    pub golden_path:
        std::collections::BTreeMap<crate::domain::ResourceKind, crate::domain::ResourceSize>,
    /// Monthly prices of new environments and resources: the estimate on
    /// the card, the cost per team, and `policy.max_monthly_cost_per_team`.
    #[serde(default)]
    pub cost: crate::domain::PriceTable,
    /// Where approvers are told a request waits for them, and the reminder.
    #[serde(default)]
    pub approval_notices: crate::requests::approvals::ApprovalNoticeConfig,
    /// Office hours: the Markdown docs questions are answered from.
    #[serde(default)]
    pub docs: crate::docs::DocsConfig,
    /// How long delivery and dedupe rows are kept before the retention
    /// scheduler prunes them.
    #[serde(default)]
    pub retention: crate::engine::retention::RetentionConfig,
    /// How the log is written.
    #[serde(default)]
    pub log: LogConfig,
    /// `GET /metrics` on `paver serve`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The platform report's weekly digest and `/metrics` window.
    #[serde(default)]
    pub report: crate::report::config::ReportConfig,
}

/// `[metrics]`: Prometheus metrics on `GET /metrics` (on by default; off,
/// nothing is recorded and the route is not there).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

/// `[log]`. Which lines are written is `PAVER_LOG` (an env filter,
/// default `warn`; `info` for what Paver does).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `text` for people, `json` (one object a line) for a log pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Config {
    /// The golden path: the configured sizes over the built-in defaults.
    pub fn golden_path(&self) -> crate::domain::GoldenPath {
        crate::domain::GoldenPath::merged(self.golden_path.clone())
    }

    /// How long a callback or hook signature is remembered against
    /// replays: past the longest tolerance of the signers that share
    /// `callback_replay` (the orchestrator's callbacks, the generic and
    /// checks hooks).
    pub fn replay_keep_ms(&self) -> i64 {
        crate::storage::replay::keep_ms(
            self.hooks
                .tolerance_secs
                .max(self.orchestrator.signature_tolerance_secs),
        )
    }
}

/// Inbound deploy hooks on `paver serve`: each route is on exactly when
/// its secret is set (`PAVER_HOOKS__GITHUB_SECRET=…` turns `/hooks/github`
/// on); without one it does not exist.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConfig {
    /// The GitHub webhook's secret (`X-Hub-Signature-256`).
    pub github_secret: Option<SecretString>,
    pub github_secret_file: Option<PathBuf>,
    /// What Argo CD's webhook service sends as `Authorization: Bearer …`
    /// (or as the basic-auth password): Argo CD does not sign.
    pub argocd_secret: Option<SecretString>,
    pub argocd_secret_file: Option<PathBuf>,
    /// The generic hook's HMAC key (signed like orchestrator callbacks).
    pub generic_secret: Option<SecretString>,
    pub generic_secret_file: Option<PathBuf>,
    /// `/hooks/checks`' HMAC key: CI reports scorecard checks only it knows.
    pub checks_secret: Option<SecretString>,
    pub checks_secret_file: Option<PathBuf>,
    /// How far a generic hook's signature timestamp may be from now.
    pub tolerance_secs: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            github_secret: None,
            github_secret_file: None,
            argocd_secret: None,
            argocd_secret_file: None,
            generic_secret: None,
            generic_secret_file: None,
            checks_secret: None,
            checks_secret_file: None,
            tolerance_secs: 300,
        }
    }
}

impl std::fmt::Debug for HooksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<SecretString>| if s.is_some() { "set" } else { "unset" };
        f.debug_struct("HooksConfig")
            .field("github_secret", &set(&self.github_secret))
            .field("argocd_secret", &set(&self.argocd_secret))
            .field("generic_secret", &set(&self.generic_secret))
            .field("checks_secret", &set(&self.checks_secret))
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

/// `paver chat`, the terminal console.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Let `paver chat --as USER` and `/as USER` speak as any catalog user
    /// on a database other than the default demo file. Off: on a shared
    /// database the console is the OS user, so nobody approves as anyone else.
    pub allow_impersonation: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// On SIGTERM: how long in-flight work may take to finish before it is
    /// handed back (jobs) or left for redelivery (events not yet handled).
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace_secs: 20,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// May hold a password: then only from PAVER_DATABASE__URL or `url_file`.
    pub url: String,
    /// A file holding the URL (with its password); PAVER_DATABASE__URL wins.
    pub url_file: Option<PathBuf>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: DEFAULT_DATABASE_URL.into(),
            url_file: None,
        }
    }
}

impl DatabaseConfig {
    /// Whether this is the default demo database (one's own SQLite file)
    /// rather than one that may be shared with other people.
    pub fn is_default(&self) -> bool {
        self.url.trim() == DEFAULT_DATABASE_URL
    }
}

/// The URL's password never shows, not even in `{:?}`.
impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("url_file", &self.url_file)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    pub file: Option<PathBuf>,
    pub backstage_url: Option<Url>,
    pub backstage_token: Option<SecretString>,
    pub backstage_token_file: Option<PathBuf>,
    pub refresh_secs: u64,
    pub timeout_secs: u64,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            file: None,
            backstage_url: None,
            backstage_token: None,
            backstage_token_file: None,
            refresh_secs: 300,
            timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlackConfig {
    pub bot_token: Option<SecretString>,
    pub bot_token_file: Option<PathBuf>,
    pub signing_secret: Option<SecretString>,
    pub signing_secret_file: Option<PathBuf>,
    pub app_token: Option<SecretString>,
    pub app_token_file: Option<PathBuf>,
    pub api_url: Url,
    /// Minimum time between two messages to one channel (Slack allows about one a second).
    pub min_interval_ms: u64,
    /// Workspaces whose events Paver handles. Empty: only the bot token's
    /// own workspace (asked of `auth.test` at start); events from anywhere
    /// else are acknowledged and ignored.
    pub team_ids: Vec<String>,
    /// When set, events must come from this Slack app (`api_app_id`).
    pub app_id: Option<String>,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            bot_token: None,
            bot_token_file: None,
            signing_secret: None,
            signing_secret_file: None,
            app_token: None,
            app_token_file: None,
            api_url: Url::parse("https://slack.com/api/").expect("valid default URL"),
            min_interval_ms: 1000,
            team_ids: Vec::new(),
            app_id: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscordConfig {
    pub token: Option<SecretString>,
    pub token_file: Option<PathBuf>,
    pub application_id: Option<String>,
    /// The application's Ed25519 public key (hex). Public, not a secret.
    pub public_key: Option<String>,
    pub api_url: Url,
    /// Connect to the gateway (messages, and interactions when no
    /// interactions endpoint URL is set). Off: HTTP interactions only.
    pub gateway: bool,
    /// Servers whose messages and interactions Paver handles. Empty: only
    /// the application's own server (its `guild_id`, asked of Discord at
    /// start). Direct messages are not from a server and are handled.
    pub guild_ids: Vec<String>,
    /// Minimum time between two messages to one channel (Discord allows
    /// five per five seconds).
    pub min_interval_ms: u64,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            token: None,
            token_file: None,
            application_id: None,
            public_key: None,
            api_url: Url::parse("https://discord.com/api/v10").expect("valid default URL"),
            gateway: true,
            guild_ids: Vec::new(),
            min_interval_ms: 1000,
        }
    }
}

/// `discord.api_url` that Paver cannot use.
#[derive(Debug, thiserror::Error)]
pub enum DiscordUrlError {
    #[error("discord.api_url must end in /api/v10 (Paver speaks Discord API v10), not `{0}`")]
    ApiVersion(Url),
    #[error("discord.api_url: `{0}` is not an http(s) URL")]
    NotHttp(Url),
}

/// The base serenity's proxy rewrite needs: `discord.api_url` without its
/// `/api/v10` (serenity's routes carry that part). Here, not in `discord`,
/// so the config is checked without the config importing an adapter.
pub fn discord_proxy_base(api_url: &Url) -> Result<String, DiscordUrlError> {
    let path = api_url.path().trim_end_matches('/');
    let prefix = if let Some(p) = path.strip_suffix("/api/v10") {
        p
    } else if path.is_empty() {
        ""
    } else {
        return Err(DiscordUrlError::ApiVersion(api_url.clone()));
    };
    let origin = api_url.origin();
    if !origin.is_tuple() {
        return Err(DiscordUrlError::NotHttp(api_url.clone()));
    }
    Ok(format!("{}{prefix}", origin.ascii_serialization()))
}

/// What is wrong with a configuration, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}:{line}: `database.url` holds a password, which may not be written in the config file; set PAVER_DATABASE__URL in the environment or `database.url_file` to a file holding the URL\n  {line} | {text}")]
    PasswordInFile {
        path: String,
        line: usize,
        text: String,
    },
    #[error("{path}:{line}: `{section}.{key}` is a secret and may not be written in the config file; set PAVER_{env} in the environment or `{key}_file` to a file holding it\n  {line} | {text}", env = format!("{}__{}", section.to_uppercase().replace('.', "__"), key.to_uppercase()))]
    SecretInFile {
        path: String,
        section: String,
        key: String,
        line: usize,
        text: String,
    },
    #[error("{location}{message}{context}")]
    Invalid {
        location: String,
        message: String,
        context: String,
    },
    #[error("cannot read secret file {path} for `{key}`: {source}")]
    SecretFile {
        key: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Which file to read: `--config`, else `PAVER_CONFIG`, else the default
/// path when it exists, else none (embedded defaults).
pub fn resolve_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("PAVER_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let default = PathBuf::from(DEFAULT_PATH);
    default.exists().then_some(default)
}

impl Config {
    /// Loads the layered configuration. `path` is the resolved file, if any.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        let mut text = None;
        if let Some(path) = path {
            let shown = path.display().to_string();
            let body = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: shown.clone(),
                source,
            })?;
            let table: toml::Table = toml::from_str(&body).map_err(|e| ConfigError::Syntax {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            reject_inline_secrets(&shown, &body, &table)?;
            figment = figment.merge(Toml::string(&body));
            text = Some((shown, body));
        }
        figment = figment.merge(EnvAsTyped::new());
        // Lossy: the environment gives text, and numeric and boolean keys
        // read numbers and booleans out of it (see `EnvAsTyped`).
        let mut config: Config = figment
            .extract_lossy()
            .map_err(|e| invalid(e, text.as_ref()))?;
        let url_from_env = figment
            .find_metadata("database.url")
            .is_some_and(|m| m.name.to_lowercase().contains("environment"));
        config.read_secret_files()?;
        config.upgrade_templates();
        if !url_from_env {
            config.read_database_url_file()?;
        }
        Ok(config)
    }

    /// Templates of the driver sections written in the old single-brace
    /// syntax (`{service}`), read as `{{ service }}` with a warning:
    /// deployed configurations keep working.
    fn upgrade_templates(&mut self) {
        self.gitops.upgrade_templates();
        self.argocd.upgrade_templates();
        self.backstage.upgrade_templates();
    }

    /// `database.url_file`, when set and the environment did not give the URL.
    fn read_database_url_file(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.database.url_file {
            let raw = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                key: "database.url".into(),
                path: path.display().to_string(),
                source,
            })?;
            self.database.url = raw.trim().to_owned();
        }
        Ok(())
    }

    /// Fills each secret from its `_file` when the environment did not set it.
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        fn fill(
            key: &str,
            value: &mut Option<SecretString>,
            file: &Option<PathBuf>,
        ) -> Result<(), ConfigError> {
            if value.is_some() {
                return Ok(());
            }
            if let Some(path) = file {
                let raw =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
                        key: key.to_owned(),
                        path: path.display().to_string(),
                        source,
                    })?;
                *value = Some(SecretString::from(raw.trim().to_owned()));
            }
            Ok(())
        }
        fill(
            "catalog.backstage_token",
            &mut self.catalog.backstage_token,
            &self.catalog.backstage_token_file,
        )?;
        fill(
            "slack.bot_token",
            &mut self.slack.bot_token,
            &self.slack.bot_token_file,
        )?;
        fill(
            "slack.signing_secret",
            &mut self.slack.signing_secret,
            &self.slack.signing_secret_file,
        )?;
        fill(
            "slack.app_token",
            &mut self.slack.app_token,
            &self.slack.app_token_file,
        )?;
        fill(
            "discord.token",
            &mut self.discord.token,
            &self.discord.token_file,
        )?;
        fill("llm.api_key", &mut self.llm.api_key, &self.llm.api_key_file)?;
        fill(
            "backstage.token",
            &mut self.backstage.token,
            &self.backstage.token_file,
        )?;
        fill(
            "argocd.token",
            &mut self.argocd.token,
            &self.argocd.token_file,
        )?;
        fill(
            "argocd.password",
            &mut self.argocd.password,
            &self.argocd.password_file,
        )?;
        fill(
            "orchestrator.signing_secret",
            &mut self.orchestrator.signing_secret,
            &self.orchestrator.signing_secret_file,
        )?;
        fill(
            "orchestrator.inbound_signing_secret",
            &mut self.orchestrator.inbound_signing_secret,
            &self.orchestrator.inbound_signing_secret_file,
        )?;
        fill(
            "hooks.github_secret",
            &mut self.hooks.github_secret,
            &self.hooks.github_secret_file,
        )?;
        fill(
            "hooks.argocd_secret",
            &mut self.hooks.argocd_secret,
            &self.hooks.argocd_secret_file,
        )?;
        fill(
            "hooks.generic_secret",
            &mut self.hooks.generic_secret,
            &self.hooks.generic_secret_file,
        )?;
        self.docs
            .office_hours
            .read_secret_file()
            .map_err(|source| ConfigError::SecretFile {
                key: "docs.office_hours.oncall_token".into(),
                path: self
                    .docs
                    .office_hours
                    .oncall_token_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                source,
            })?;
        fill(
            "hooks.checks_secret",
            &mut self.hooks.checks_secret,
            &self.hooks.checks_secret_file,
        )?;
        Ok(())
    }

    /// Checks beyond types: things that parse but cannot work.
    /// `[report]` as the digest runs it: without channels of its own, it
    /// posts to `notify.platform_channels`.
    pub fn report_settings(&self) -> crate::report::config::ReportConfig {
        let mut r = self.report.clone();
        if r.channels.is_empty() {
            r.channels = self.notify.platform_channels.clone();
        }
        r
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let db = &self.database.url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            out.push(format!(
                "database.url: `{}` is neither sqlite:… nor postgres://…",
                redact_url(db)
            ));
        }
        if self.catalog.refresh_secs == 0 {
            out.push("catalog.refresh_secs: must be at least 1".into());
        }
        if let Some(f) = &self.catalog.file {
            if !f.exists() {
                out.push(format!("catalog.file: {} does not exist", f.display()));
            }
        }
        if self.llm.base_url.is_some() != self.llm.model.is_some() {
            out.push("llm: set both llm.base_url and llm.model, or neither".into());
        }
        if let Some(u) = &self.llm.base_url {
            if !matches!(u.scheme(), "http" | "https") {
                out.push(format!("llm.base_url: `{u}` is not an http(s) URL"));
            }
        }
        if self.llm.timeout_secs.is_nan() || self.llm.timeout_secs <= 0.0 {
            out.push("llm.timeout_secs: must be more than 0".into());
        }
        if self.llm.max_concurrency == 0 {
            out.push("llm.max_concurrency: must be at least 1".into());
        }
        if self.llm.max_tokens == 0 {
            out.push("llm.max_tokens: must be at least 1".into());
        }
        if let Some(d) = &self.llm.prompts_dir {
            if !d.is_dir() {
                out.push(format!("llm.prompts_dir: {} is not a folder", d.display()));
            }
        }
        if let Some(k) = &self.discord.public_key {
            if k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push("discord.public_key: expected 64 hex characters".into());
            }
        }
        if let Err(e) = discord_proxy_base(&self.discord.api_url) {
            out.push(e.to_string());
        }
        out.extend(self.policy.problems());
        out.extend(self.gitops.problems());
        out.extend(self.drivers.problems());
        out.extend(self.executor.problems());
        out.extend(self.scorecards.problems());
        out.extend(self.docs.problems());
        out.extend(self.retention.problems());
        out.extend(self.report.problems());
        if self.report.digest_schedule.is_some() && self.report_settings().channels.is_empty() {
            out.push("report.digest_schedule: set, but neither report.channels nor notify.platform_channels names a channel to post in".into());
        }
        let uses = |d: DriverKind| self.drivers.uses(d);
        if uses(DriverKind::Backstage) {
            out.extend(self.backstage.problems());
            if self.backstage.base_url.is_none() && self.catalog.backstage_url.is_none() {
                out.push("backstage.base_url: the backstage driver is used but neither backstage.base_url nor catalog.backstage_url is set".into());
            }
            if self.drivers.create_environment == DriverKind::Backstage
                && self.backstage.environment_template.is_none()
            {
                out.push("backstage.environment_template: drivers.create_environment is \"backstage\", so name the template to run".into());
            }
        }
        if uses(DriverKind::Argocd) {
            out.extend(self.argocd.problems());
            if self.argocd.base_url.is_none() {
                out.push("argocd.base_url: the argocd driver is used but has no base_url".into());
            }
            if self.argocd.token.is_none() && self.argocd.password.is_none() {
                out.push("argocd.token: the argocd driver is used but has no token (PAVER_ARGOCD__TOKEN or token_file) nor username/password".into());
            }
        }
        if uses(DriverKind::Orchestrator) {
            out.extend(self.orchestrator.problems());
            if self.orchestrator.url.is_none() {
                out.push("orchestrator.url: the orchestrator driver is used but has no url".into());
            }
            if self.orchestrator.signing_secret.is_none() {
                out.push("orchestrator.signing_secret: the orchestrator driver is used but has no signing secret (PAVER_ORCHESTRATOR__SIGNING_SECRET or signing_secret_file)".into());
            }
        }
        out
    }
}

/// A config line with its value hidden, for errors about secrets.
fn masked(line: &str) -> String {
    match line.split_once('=') {
        Some((key, _)) => format!("{key}= \"***\""),
        None => line.to_owned(),
    }
}

fn reject_inline_secrets(path: &str, body: &str, table: &toml::Table) -> Result<(), ConfigError> {
    let db_url = table
        .get("database")
        .and_then(|s| s.as_table())
        .and_then(|s| s.get("url"))
        .and_then(|u| u.as_str());
    if let Some(url) = db_url.filter(|u| url_has_password(u)) {
        let (line, text) = locate(body, &["database", "url"]).unwrap_or((0, String::new()));
        return Err(ConfigError::PasswordInFile {
            path: path.to_owned(),
            line,
            text: text.replace(url, &redact_url(url)),
        });
    }
    // A secret of a nested section (`[docs.office_hours]`).
    let on_call_token = table
        .get("docs")
        .and_then(|s| s.as_table())
        .and_then(|s| s.get("office_hours"))
        .and_then(|s| s.as_table())
        .is_some_and(|s| s.contains_key("oncall_token"));
    if on_call_token {
        let (line, text) =
            locate(body, &["docs", "office_hours", "oncall_token"]).unwrap_or((0, String::new()));
        return Err(ConfigError::SecretInFile {
            path: path.to_owned(),
            section: "docs.office_hours".into(),
            key: "oncall_token".into(),
            line,
            text: masked(&text),
        });
    }
    for (section, key) in SECRET_KEYS {
        let present = table
            .get(section)
            .and_then(|s| s.as_table())
            .is_some_and(|s| s.contains_key(key));
        if present {
            let (line, text) = locate(body, &[section, key]).unwrap_or((0, String::new()));
            return Err(ConfigError::SecretInFile {
                path: path.to_owned(),
                section: section.to_owned(),
                key: key.to_owned(),
                line,
                // The error is shown and logged: not the secret itself.
                text: masked(&text),
            });
        }
    }
    Ok(())
}

/// `PAVER_<SECTION>__<KEY>` variables as the user typed them. Figment's
/// `Env` parses each value, so `PAVER_DISCORD__APPLICATION_ID=1100000000000000001`
/// became a number that no string key accepts ("found unsigned int, expected
/// a string"), and a secret lost its quotes or spaces. Here a value that
/// reads as a number or a boolean stays text (numeric and boolean keys read
/// it through `extract_lossy`), secrets stay exactly as typed, and lists and
/// tables (`PAVER_DRIVERS__STATUS='["gitops", "argocd"]'`) still parse.
struct EnvAsTyped {
    env: Env,
}

impl EnvAsTyped {
    fn new() -> Self {
        EnvAsTyped {
            env: Env::prefixed("PAVER_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        }
    }
}

/// Whether the dotted key (`slack.bot_token`) holds a secret.
fn is_secret_key(key: &str) -> bool {
    key == "database.url"
        || SECRET_KEYS
            .iter()
            .any(|(section, name)| key.split_once('.') == Some((section, name)))
}

/// The configuration tree the variables (`("discord.application_id", "11")`) make.
fn env_dict(vars: impl IntoIterator<Item = (String, String)>) -> Dict {
    fn merge(into: &mut Dict, from: Dict) {
        for (k, v) in from {
            match (into.get_mut(&k), v) {
                (Some(Value::Dict(_, inner)), Value::Dict(_, more)) => merge(inner, more),
                (_, v) => {
                    into.insert(k, v);
                }
            }
        }
    }
    let mut dict = Dict::new();
    for (key, raw) in vars {
        let value = if is_secret_key(&key) {
            Value::from(raw)
        } else {
            match raw.parse::<Value>() {
                Ok(Value::Num(..) | Value::Bool(..)) => Value::from(raw.trim().to_owned()),
                Ok(parsed) => parsed,
                Err(never) => match never {},
            }
        };
        if let Some(nested) = figment::util::nest(&key, value).into_dict() {
            merge(&mut dict, nested);
        }
    }
    dict
}

impl Provider for EnvAsTyped {
    fn metadata(&self) -> Metadata {
        // Keeps the name `invalid` recognises errors from the environment by.
        self.env.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let vars = self.env.iter().map(|(k, v)| (k.as_str().to_owned(), v));
        Ok(Profile::Default.collect(env_dict(vars)))
    }
}

/// Finds the line defining `section.key` (or the section header when no
/// key is given) in a simple TOML file: 1-based line number and its text.
/// Arrays of tables count as indexed sections: `policy.rules.1.name` is the
/// `name` key under the second `[[policy.rules]]`. When the key is not found,
/// the header of the deepest enclosing section is returned.
pub fn locate(body: &str, path: &[&str]) -> Option<(usize, String)> {
    let mut current: Vec<String> = Vec::new();
    let mut arrays: std::collections::HashMap<String, usize> = Default::default();
    let mut header_line: Option<(usize, usize, String)> = None;
    let prefix_of_path =
        |segs: &[String]| segs.len() <= path.len() && segs.iter().zip(path).all(|(a, b)| a == b);
    for (i, line) in body.lines().enumerate() {
        let t = line.trim();
        let header = t
            .strip_prefix("[[")
            .and_then(|r| r.strip_suffix("]]"))
            .map(|h| (h, true))
            .or_else(|| {
                t.strip_prefix('[')
                    .and_then(|r| r.strip_suffix(']'))
                    .map(|h| (h, false))
            });
        if let Some((h, is_array)) = header {
            let name = h.trim().to_owned();
            current = name.split('.').map(|s| s.trim().to_owned()).collect();
            if is_array {
                let n = arrays.entry(name).or_insert(0);
                current.push(n.to_string());
                *n += 1;
            }
            if current.len() == path.len() && prefix_of_path(&current) {
                return Some((i + 1, line.to_owned()));
            }
            if prefix_of_path(&current)
                && header_line
                    .as_ref()
                    .is_none_or(|(depth, _, _)| current.len() > *depth)
            {
                header_line = Some((current.len(), i + 1, line.to_owned()));
            }
            continue;
        }
        if !current.is_empty() && path.len() > current.len() && prefix_of_path(&current) {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim() == path[current.len()] {
                    return Some((i + 1, line.to_owned()));
                }
            }
        }
    }
    header_line.map(|(_, line, text)| (line, text))
}

fn invalid(e: figment::Error, text: Option<&(String, String)>) -> ConfigError {
    let key: Vec<&str> = e.path.iter().map(String::as_str).collect();
    let from_env = e
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.to_lowercase().contains("environment"));
    let mut location = String::new();
    let mut context = String::new();
    let shown_key = key.join(".");
    if from_env {
        location = format!(
            "environment variable PAVER_{}: ",
            shown_key.replace('.', "__").to_uppercase()
        );
    } else if let Some((path, body)) = text {
        // An unknown key is reported at its parent; point at the key itself.
        let mut lookup = key.clone();
        if let figment::error::Kind::UnknownField(field, _) = &e.kind {
            lookup.push(field.as_str());
        }
        match locate(body, &lookup) {
            Some((line, text)) => {
                location = format!("{path}:{line}: ");
                context = format!("\n  {line} | {text}");
            }
            None => location = format!("{path}: "),
        }
    }
    let message = if shown_key.is_empty() {
        e.kind.to_string()
    } else {
        format!("`{shown_key}`: {}", e.kind)
    };
    ConfigError::Invalid {
        location,
        message,
        context,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_digest_posts_to_the_platform_channels_unless_it_names_its_own() {
        let mut c = Config::default();
        assert!(c.report_settings().channels.is_empty());
        c.report.digest_schedule = Some(crate::util::cron::Cron::parse("0 9 * * Mon").unwrap());
        assert!(c
            .problems()
            .iter()
            .any(|p| p.starts_with("report.digest_schedule")));
        c.notify.platform_channels =
            vec![crate::domain::ChannelRef::parse("slack:C0PLATFORM").unwrap()];
        assert_eq!(c.report_settings().channels, c.notify.platform_channels);
        assert!(!c
            .problems()
            .iter()
            .any(|p| p.starts_with("report.digest_schedule")));
        c.report.channels = vec![crate::domain::ChannelRef::parse("discord:1000").unwrap()];
        assert_eq!(c.report_settings().channels, c.report.channels);
    }

    fn write(body: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(body.as_bytes()).unwrap();
        f
    }

    #[test]
    fn locates_keys_and_sections() {
        let body = "# c\n[server]\nlisten = \"x\"\n\n[slack]\napi_url = \"y\"\n";
        assert_eq!(locate(body, &["slack", "api_url"]).unwrap().0, 6);
        assert_eq!(locate(body, &["server"]).unwrap().0, 2);
        assert_eq!(locate(body, &["slack", "nope"]).unwrap().0, 5);
        let body = "[policy]\nmax_replicas = 3\n\n[[policy.rules]]\nname = \"a\"\n\n[[policy.rules]]\nname = \"b\"\nactions = [\"x\"]\n";
        assert_eq!(locate(body, &["policy", "max_replicas"]).unwrap().0, 2);
        assert_eq!(
            locate(body, &["policy", "rules", "0", "name"]).unwrap().0,
            5
        );
        assert_eq!(
            locate(body, &["policy", "rules", "1", "actions", "0"])
                .unwrap()
                .0,
            9
        );
        assert_eq!(locate(body, &["policy", "rules", "1"]).unwrap().0, 7);
        assert_eq!(
            locate(body, &["policy", "rules", "1", "decision"])
                .unwrap()
                .0,
            7
        );
        assert_eq!(locate(body, &["policy", "nope"]).unwrap().0, 1);
    }

    #[test]
    fn inline_secrets_are_refused() {
        let f = write("[slack]\nsigning_secret = \"hunter2\"\n");
        let err = Config::load(Some(f.path())).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
        assert!(err.contains("PAVER_SLACK__SIGNING_SECRET"), "{err}");
    }

    #[test]
    fn bad_values_name_their_line() {
        let f = write("[server]\nlisten = \"not an address\"\n");
        let err = Config::load(Some(f.path())).unwrap_err().to_string();
        assert!(
            err.contains(":2:") && err.contains("server.listen"),
            "{err}"
        );
        let f = write("[catalog]\nfiel = \"x\"\n");
        let err = Config::load(Some(f.path())).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("fiel"), "{err}");
        let f = write("[catalog\n");
        assert!(matches!(
            Config::load(Some(f.path())),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn secret_files_are_read_and_never_shown() {
        let secret = write("s3cr3t\n");
        let f = write(&format!(
            "[slack]\nsigning_secret_file = \"{}\"\n",
            secret.path().display()
        ));
        let c = Config::load(Some(f.path())).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(
            c.slack.signing_secret.as_ref().unwrap().expose_secret(),
            "s3cr3t"
        );
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn driver_sections_parse_and_keep_their_secrets_out() {
        let f = write("[drivers]\ndeploy = \"argocd\"\nstatus = [\"gitops\", \"argocd\"]\n[argocd]\nbase_url = \"https://argocd.example.internal\"\n[executor]\nworkers = 4\n");
        let c = Config::load(Some(f.path())).unwrap();
        assert_eq!(c.drivers.deploy, DriverKind::Argocd);
        assert_eq!(
            c.drivers.status.kinds(),
            [DriverKind::Gitops, DriverKind::Argocd]
        );
        assert_eq!(c.executor.workers, 4);
        // No token: check-config says so.
        assert!(c.problems().iter().any(|p| p.starts_with("argocd.token")));
        for (section, key) in [
            ("orchestrator", "signing_secret"),
            ("orchestrator", "inbound_signing_secret"),
            ("argocd", "password"),
            ("backstage", "token"),
        ] {
            let f = write(&format!("[{section}]\n{key} = \"hunter2\"\n"));
            let err = Config::load(Some(f.path())).unwrap_err().to_string();
            assert!(err.contains("is a secret"), "{err}");
        }
    }

    #[test]
    fn the_inbound_callback_key_comes_from_its_file() {
        use secrecy::ExposeSecret;
        let secret = write("inbound-key\n");
        let f = write(&format!(
            "[orchestrator]\ninbound_signing_secret_file = \"{}\"\n",
            secret.path().display()
        ));
        let c = Config::load(Some(f.path())).unwrap();
        assert_eq!(
            c.orchestrator
                .inbound_secret()
                .map(|s| s.expose_secret().to_owned())
                .as_deref(),
            Some("inbound-key")
        );
        assert!(!format!("{:?}", c.orchestrator).contains("inbound-key"));
    }

    #[test]
    fn database_passwords_stay_out_of_the_file_and_of_debug() {
        let f = write("[server]\nlisten = \"127.0.0.1:8080\"\n\n[database]\nurl = \"postgres://paver:hunter2@db/paver\"\n");
        let err = Config::load(Some(f.path())).unwrap_err().to_string();
        assert!(
            err.contains(":5:") && err.contains("database.url_file"),
            "{err}"
        );
        assert!(err.contains("PAVER_DATABASE__URL"), "{err}");
        assert!(
            err.contains("postgres://paver:***@db/paver") && !err.contains("hunter2"),
            "{err}"
        );
        let f = write("[database]\nurl = \"postgres://paver@db/paver?password=hunter2\"\n");
        let err = Config::load(Some(f.path())).unwrap_err().to_string();
        assert!(err.contains(":2:") && !err.contains("hunter2"), "{err}");
        // From a file it is fine, and the password shows nowhere.
        let url = write("postgres://paver:hunter2@db/paver\n");
        let f = write(&format!(
            "[database]\nurl_file = \"{}\"\n",
            url.path().display()
        ));
        let c = Config::load(Some(f.path())).unwrap();
        assert_eq!(c.database.url, "postgres://paver:hunter2@db/paver");
        assert!(!c.database.is_default());
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
        assert!(format!("{c:?}").contains("postgres://paver:***@db/paver"));
        // Inline secrets are named, not shown.
        let f = write("[slack]\nbot_token = \"xoxb-hunter2\"\n");
        let err = Config::load(Some(f.path())).unwrap_err().to_string();
        assert!(
            err.contains("bot_token = \"***\"") && !err.contains("hunter2"),
            "{err}"
        );
        assert!(Config::default().database.is_default());
    }

    #[test]
    fn environment_values_stay_text_for_text_keys() {
        let vars = [
            ("discord.application_id", "1100000000000000001"),
            ("discord.public_key", &"1".repeat(64)),
            ("slack.signing_secret", " 0042 "),
            ("llm.model", "true"),
            ("catalog.refresh_secs", "60"),
            ("discord.gateway", "false"),
            ("llm.temperature", "0.5"),
            ("drivers.status", "[\"gitops\", \"argocd\"]"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let c: Config = Figment::new()
            .merge(figment::providers::Serialized::from(
                env_dict(vars),
                Profile::Default,
            ))
            .extract_lossy()
            .unwrap();
        assert_eq!(
            c.discord.application_id.as_deref(),
            Some("1100000000000000001")
        );
        assert_eq!(c.discord.public_key, Some("1".repeat(64)));
        use secrecy::ExposeSecret;
        assert_eq!(
            c.slack.signing_secret.as_ref().unwrap().expose_secret(),
            " 0042 "
        );
        assert_eq!(c.llm.model.as_deref(), Some("true"));
        assert_eq!(c.catalog.refresh_secs, 60);
        assert!(!c.discord.gateway);
        assert_eq!(c.llm.temperature, 0.5);
        assert_eq!(
            c.drivers.status.kinds(),
            [DriverKind::Gitops, DriverKind::Argocd]
        );
    }

    #[test]
    fn old_single_brace_templates_are_read_as_templates() {
        let f = write(concat!(
            "[gitops]\nurl_template = \"https://{service}.{environment}.example.internal\"\n",
            "[argocd]\napp_name_template = \"{app}-{environment}\"\nrevision_template = \"v{version}\"\n",
            "[backstage.scaffold_values]\nname = \"{name}\"\nowner = \"{owner_ref}\"\nother = \"{kept}\"\n",
        ));
        let c = Config::load(Some(f.path())).unwrap();
        assert_eq!(
            c.gitops.url_template,
            "https://{{ service }}.{{ environment }}.example.internal"
        );
        assert_eq!(c.argocd.app_name_template, "{{ app }}-{{ environment }}");
        assert_eq!(c.argocd.revision_template, "v{{ version }}");
        assert_eq!(c.backstage.scaffold_values["name"], "{{ name }}");
        assert_eq!(c.backstage.scaffold_values["owner"], "{{ owner_ref }}");
        // Not a placeholder it knows: left as text, as before.
        assert_eq!(c.backstage.scaffold_values["other"], "{kept}");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn a_template_that_cannot_fill_is_a_problem() {
        let f = write("[gitops]\nurl_template = \"https://{{ servce }}.example.internal\"\n[drivers]\nscaffold_service = \"backstage\"\n[backstage]\nbase_url = \"https://backstage.example.internal\"\n[backstage.scaffold_values]\nname = \"{{ environment }}\"\n");
        let c = Config::load(Some(f.path())).unwrap();
        let p = c.problems().join("\n");
        assert!(p.contains("gitops.url_template:"), "{p}");
        assert!(p.contains("backstage.scaffold_values.name:"), "{p}");
        let f = write("[gitops]\nurl_template = \"https://{{ environment }}.example.internal\"\n");
        let p = Config::load(Some(f.path())).unwrap().problems().join("\n");
        assert!(
            p.contains("gitops.url_template: must contain {{ service }}"),
            "{p}"
        );
    }
}
