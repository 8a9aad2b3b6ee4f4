//! `[docs]`: the folders of Markdown, and the Git repositories holding
//! them, that office hours answers from; and `[docs.office_hours]`: where
//! questions go to humans.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::ChannelRef;

/// The names a source's `url_template` may use.
pub const URL_NAMES: &[&str] = &["path", "anchor"];

/// How often sources are checked when `refresh_secs` is not set.
pub const DEFAULT_REFRESH_SECS: u64 = 60;

/// Where git sources are cloned when `cache_dir` is not set: next to the
/// default SQLite file (`var/paver.db`), read from the working directory.
pub const DEFAULT_CACHE_DIR: &str = "var/docs";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DocsConfig {
    /// Docs roots in the MkDocs/TechDocs layout (`mkdocs.yml`, `docs/`):
    /// folders, or Git repositories cloned under `cache_dir`.
    pub sources: Vec<DocsSource>,
    /// Seconds between two checks of every source for changes (a pull for
    /// git sources); 0: never after startup. Default 60.
    pub refresh_secs: Option<u64>,
    /// Where git sources are cloned. Default `var/docs`.
    pub cache_dir: Option<PathBuf>,
    /// Humans in the loop: handoffs, the on-call page, the agenda.
    pub office_hours: OfficeHoursConfig,
    /// Whether answers are written by the `[llm]` model (when one is
    /// configured) rather than quoted. On by default, so configuring the
    /// LLM once turns on both understanding and answering.
    pub llm: bool,
    /// An OpenAI-compatible embeddings endpoint: when set, retrieval fuses
    /// embedding similarity with BM25. Off by default.
    pub embeddings: Option<super::embed::EmbeddingsConfig>,
}

impl Default for DocsConfig {
    fn default() -> Self {
        DocsConfig {
            sources: Vec::new(),
            refresh_secs: None,
            cache_dir: None,
            office_hours: OfficeHoursConfig::default(),
            llm: true,
            embeddings: None,
        }
    }
}

/// `[docs.office_hours]`. Every key has a working default: handoffs go to
/// the catalog's platform team's channel, nobody is paged, no agenda.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfficeHoursConfig {
    /// The catalog group whose channel questions are handed to.
    pub team: String,
    /// Channels to hand questions to instead of the team's (`slack:C0…`,
    /// `discord:…`): the one on the asker's platform, else the first.
    pub channels: Vec<ChannelRef>,
    /// A URL POSTed a JSON page when someone presses "Ask a human".
    pub oncall_webhook: Option<url::Url>,
    /// Sent to the webhook as `Authorization: Bearer …`: a secret, from
    /// PAVER_DOCS__OFFICE_HOURS__ONCALL_TOKEN or `oncall_token_file`.
    pub oncall_token: Option<SecretString>,
    pub oncall_token_file: Option<PathBuf>,
    /// How long the page may take.
    pub oncall_timeout_secs: u64,
    /// When the agenda of tagged questions is posted (five-field cron,
    /// read in `zone`); none: no agenda.
    pub agenda_schedule: Option<AgendaCron>,
    /// The agenda's time zone (IANA, e.g. Europe/Berlin).
    pub zone: AgendaZone,
    /// How often each replica's scheduler looks whether an agenda is due.
    pub tick_secs: u64,
}

impl Default for OfficeHoursConfig {
    fn default() -> Self {
        OfficeHoursConfig {
            team: "team-platform".into(),
            channels: Vec::new(),
            oncall_webhook: None,
            oncall_token: None,
            oncall_token_file: None,
            oncall_timeout_secs: 10,
            agenda_schedule: None,
            zone: AgendaZone(Tz::UTC),
            tick_secs: 60,
        }
    }
}

impl std::fmt::Debug for OfficeHoursConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token never reaches a log.
        f.debug_struct("OfficeHoursConfig")
            .field("team", &self.team)
            .field("channels", &self.channels)
            .field(
                "oncall_webhook",
                &self
                    .oncall_webhook
                    .as_ref()
                    .map(|u| crate::util::redact_url(u.as_str())),
            )
            .field("oncall_token", &self.oncall_token.as_ref().map(|_| "***"))
            .field("agenda_schedule", &self.agenda_schedule)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

impl PartialEq for OfficeHoursConfig {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret;
        let token = |c: &Self| {
            c.oncall_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
        };
        self.team == other.team
            && self.channels == other.channels
            && self.oncall_webhook == other.oncall_webhook
            && token(self) == token(other)
            && self.oncall_token_file == other.oncall_token_file
            && self.oncall_timeout_secs == other.oncall_timeout_secs
            && self.agenda_schedule == other.agenda_schedule
            && self.zone == other.zone
            && self.tick_secs == other.tick_secs
    }
}

impl OfficeHoursConfig {
    /// Fills `oncall_token` from `oncall_token_file` when the environment
    /// did not set it (the config loader calls it with the other secrets).
    pub fn read_secret_file(&mut self) -> std::io::Result<()> {
        if self.oncall_token.is_none() {
            if let Some(path) = &self.oncall_token_file {
                let raw = std::fs::read_to_string(path)?;
                self.oncall_token = Some(SecretString::from(raw.trim().to_owned()));
            }
        }
        Ok(())
    }

    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if crate::domain::TeamName::parse(self.team.clone()).is_err() {
            out.push(format!(
                "docs.office_hours.team: `{}` is not a catalog group name",
                self.team
            ));
        }
        if let Some(u) = &self.oncall_webhook {
            if !matches!(u.scheme(), "http" | "https") {
                out.push(format!(
                    "docs.office_hours.oncall_webhook: `{}` is not an http(s) URL",
                    crate::util::redact_url(u.as_str())
                ));
            }
        }
        if self.oncall_token.is_some() && self.oncall_webhook.is_none() {
            out.push(
                "docs.office_hours.oncall_token: set, but there is no oncall_webhook to send it to"
                    .into(),
            );
        }
        if self.oncall_timeout_secs == 0 {
            out.push("docs.office_hours.oncall_timeout_secs: must be at least 1".into());
        }
        if self.tick_secs == 0 {
            out.push("docs.office_hours.tick_secs: must be at least 1".into());
        }
        out
    }
}

/// The agenda's cron and zone: `util::cron`'s, shared with the report's
/// digest.
pub use crate::util::cron::{Cron as AgendaCron, Zone as AgendaZone};

impl DocsConfig {
    /// How often the sources are checked; `None`: never.
    pub fn refresh_every(&self) -> Option<Duration> {
        match self.refresh_secs.unwrap_or(DEFAULT_REFRESH_SECS) {
            0 => None,
            s => Some(Duration::from_secs(s)),
        }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
    }
}

/// One docs root and how its sections are linked.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(try_from = "RawSource")]
pub struct DocsSource {
    pub origin: Origin,
    /// A section's link. `{{ path }}` is the page's MkDocs URL
    /// (`databases/postgres/`), `{{ anchor }}` the heading's id.
    pub url_template: String,
}

/// Where a docs root is.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The folder holding `mkdocs.yml` (relative paths are read from the
    /// working directory, as `catalog.file` is).
    Dir(PathBuf),
    Git(GitSource),
}

/// A repository cloned (depth 1) and pulled on every refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct GitSource {
    pub remote: GitRemote,
    pub branch: String,
    /// The docs root inside the repository (`.`: its top).
    pub subdir: PathBuf,
    /// The environment variable holding a token sent as
    /// `Authorization: Bearer …` (never in the config, argv or the log).
    pub token_env: Option<String>,
}

/// A remote git may be pointed at safely: not an option (`-…`), not a
/// `transport::address` (`ext::sh -c …` runs commands).
#[derive(Clone, PartialEq, Eq)]
pub struct GitRemote(String);

impl GitRemote {
    pub fn parse(s: &str) -> Result<GitRemote, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("is empty".into());
        }
        if s.starts_with('-') {
            return Err(format!(
                "`{s}` starts with `-` (git would read it as an option)"
            ));
        }
        // `<transport>::<address>` asks git for a remote helper; `ext::`
        // runs a command. Windows drive letters never hold `::`.
        if let Some((transport, _)) = s.split_once("::") {
            if !transport.contains('/') {
                return Err(format!(
                    "`{transport}::` remotes are refused (remote helpers may run commands)"
                ));
            }
        }
        if s.chars().any(|c| c.is_control()) {
            return Err("holds control characters".into());
        }
        Ok(GitRemote(s.to_owned()))
    }

    /// As given, for git's argv only: may hold a user name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Without user info (`https://***@host/…`): what the log shows.
    pub fn redacted(&self) -> String {
        redact_userinfo(&self.0)
    }

    /// Whether the URL carries a password (`https://user:secret@…`).
    pub fn has_password(&self) -> bool {
        match url::Url::parse(&self.0) {
            Ok(u) => u.password().is_some(),
            Err(_) => false,
        }
    }
}

impl std::fmt::Debug for GitRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Debug output ends up in logs and panics too.
        write!(f, "GitRemote({:?})", self.redacted())
    }
}

impl std::fmt::Display for GitRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `scheme://user:pass@host/…` → `scheme://***@host/…`; scp-like
/// `user@host:path` keeps its user (a name, never a secret, and git's
/// own convention for SSH).
fn redact_userinfo(s: &str) -> String {
    let Some(start) = s.find("://").map(|i| i + 3) else {
        return s.to_owned();
    };
    let rest = &s[start..];
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{}***{}", &s[..start], &rest[at..]),
        None => s.to_owned(),
    }
}

/// What `[[docs.sources]]` holds before it is known to be one thing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    dir: Option<PathBuf>,
    git: Option<String>,
    branch: Option<String>,
    subdir: Option<PathBuf>,
    token_env: Option<String>,
    #[serde(default = "default_url_template")]
    url_template: String,
}

impl TryFrom<RawSource> for DocsSource {
    type Error = String;

    fn try_from(raw: RawSource) -> Result<DocsSource, String> {
        let origin = match (raw.dir, raw.git) {
            (Some(_), Some(_)) => {
                return Err("a docs source is either `dir` or `git`, not both".into())
            }
            (None, None) => {
                return Err("a docs source needs `dir` (a folder) or `git` (a repository)".into())
            }
            (Some(dir), None) => {
                if raw.branch.is_some() || raw.subdir.is_some() || raw.token_env.is_some() {
                    return Err("`branch`, `subdir` and `token_env` are for `git` sources".into());
                }
                Origin::Dir(dir)
            }
            (None, Some(git)) => {
                let remote = GitRemote::parse(&git).map_err(|e| format!("git: {e}"))?;
                let branch = raw.branch.unwrap_or_else(|| "main".into());
                if branch.is_empty() || branch.starts_with('-') || branch.contains("..") {
                    return Err(format!("branch `{branch}` is not a branch name"));
                }
                let subdir = raw.subdir.unwrap_or_else(|| PathBuf::from("."));
                if !inside(&subdir) {
                    return Err(format!(
                        "subdir `{}` must stay inside the repository (relative, no `..`)",
                        subdir.display()
                    ));
                }
                Origin::Git(GitSource {
                    remote,
                    branch,
                    subdir,
                    token_env: raw.token_env,
                })
            }
        };
        Ok(DocsSource {
            origin,
            url_template: raw.url_template,
        })
    }
}

/// A relative path that does not climb out of where it is joined.
fn inside(p: &Path) -> bool {
    p.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn default_url_template() -> String {
    // Without a site to point at, the page's path still tells where to look.
    "{{ path }}#{{ anchor }}".into()
}

impl DocsSource {
    /// A source at `dir` with the default link template.
    pub fn at(dir: impl Into<PathBuf>) -> DocsSource {
        DocsSource {
            origin: Origin::Dir(dir.into()),
            url_template: default_url_template(),
        }
    }

    /// A git source on `branch` with the default link template.
    pub fn git(remote: GitRemote, branch: &str) -> DocsSource {
        DocsSource {
            origin: Origin::Git(GitSource {
                remote,
                branch: branch.to_owned(),
                subdir: PathBuf::from("."),
                token_env: None,
            }),
            url_template: default_url_template(),
        }
    }

    /// For messages and logs: the folder, or the repository (redacted)
    /// and branch.
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::Dir(d) => d.display().to_string(),
            Origin::Git(g) => format!("{} ({})", g.remote, g.branch),
        }
    }
}

impl DocsConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            if let Err(e) = crate::util::template::check("url_template", &s.url_template, URL_NAMES)
            {
                out.push(format!("docs.sources[{i}].url_template: {e}"));
            }
            match &s.origin {
                Origin::Dir(dir) if !dir.is_dir() => out.push(format!(
                    "docs.sources[{i}].dir: {} is not a folder",
                    dir.display()
                )),
                Origin::Dir(_) => {}
                Origin::Git(g) => {
                    if g.remote.has_password() {
                        out.push(format!(
                            "docs.sources[{i}].git: {} holds a password; give a token with token_env instead",
                            g.remote
                        ));
                    }
                    if let Some(var) = &g.token_env {
                        if std::env::var_os(var).is_none() {
                            out.push(format!("docs.sources[{i}].token_env: ${var} is not set"));
                        }
                    }
                }
            }
        }
        out.extend(self.office_hours.problems());
        if let Some(e) = &self.embeddings {
            out.extend(e.problems());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(toml: &str) -> Result<DocsSource, String> {
        #[derive(Deserialize)]
        struct Wrap {
            #[allow(dead_code)]
            docs: DocsConfig,
        }
        toml::from_str::<Wrap>(toml)
            .map(|w| w.docs.sources.into_iter().next().unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_dir_source_reads_as_before() {
        let s = source("[[docs.sources]]\ndir = \"config/docs\"\n").unwrap();
        assert_eq!(s, DocsSource::at("config/docs"));
    }

    #[test]
    fn a_git_source_has_defaults() {
        let s = source("[[docs.sources]]\ngit = \"https://git.example.com/platform/docs.git\"\n")
            .unwrap();
        let Origin::Git(g) = s.origin else {
            panic!("not git")
        };
        assert_eq!(g.branch, "main");
        assert_eq!(g.subdir, PathBuf::from("."));
    }

    #[test]
    fn unsafe_or_ambiguous_sources_are_refused() {
        for (toml, says) in [
            ("dir = \"a\"\ngit = \"https://h/r\"", "not both"),
            ("url_template = \"x\"", "needs `dir`"),
            ("git = \"--upload-pack=touch /tmp/x\"", "starts with `-`"),
            ("git = \"ext::sh -c touch% /tmp/x\"", "ext::"),
            ("git = \"fd::17\"", "fd::"),
            (
                "git = \"https://h/r\"\nsubdir = \"../etc\"",
                "inside the repository",
            ),
            (
                "git = \"https://h/r\"\nsubdir = \"/etc\"",
                "inside the repository",
            ),
            (
                "git = \"https://h/r\"\nbranch = \"--force\"",
                "not a branch",
            ),
            ("dir = \"a\"\nbranch = \"main\"", "for `git` sources"),
        ] {
            let err = source(&format!("[[docs.sources]]\n{toml}\n")).unwrap_err();
            assert!(err.contains(says), "{toml}: {err}");
        }
    }

    #[test]
    fn urls_are_shown_without_user_info() {
        let r = GitRemote::parse("https://bot:s3cret@git.example.com/docs.git").unwrap();
        assert_eq!(r.redacted(), "https://***@git.example.com/docs.git");
        assert!(!format!("{r:?} {r}").contains("s3cret"));
        assert!(r.has_password());
        let scp = GitRemote::parse("git@github.com:acme/docs.git").unwrap();
        assert_eq!(scp.redacted(), "git@github.com:acme/docs.git");
        assert!(!scp.has_password());
    }

    #[test]
    fn a_password_in_the_url_is_a_problem() {
        let c = DocsConfig {
            sources: vec![DocsSource::git(
                GitRemote::parse("https://bot:s3cret@git.example.com/docs.git").unwrap(),
                "main",
            )],
            ..Default::default()
        };
        let p = c.problems().join("\n");
        assert!(p.contains("token_env"), "{p}");
        assert!(!p.contains("s3cret"), "{p}");
    }

    #[test]
    fn refresh_defaults_and_zero_means_never() {
        let c = DocsConfig::default();
        assert_eq!(c.refresh_every(), Some(Duration::from_secs(60)));
        assert_eq!(c.cache_dir(), PathBuf::from("var/docs"));
        let c = DocsConfig {
            refresh_secs: Some(0),
            ..Default::default()
        };
        assert_eq!(c.refresh_every(), None);
    }
}
