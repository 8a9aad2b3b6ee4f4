//! Prompts are files (`prompts/*.md`), loaded once at start. The first line
//! of each is `version: NAME`; the version of the prompt that produced an
//! understanding is recorded with every request.
//!
//! A prompt is a system message and, after a line `=== user ===`, the user
//! message. The system message holds only what never changes, so servers
//! that cache a prompt's prefix (llama.cpp, OpenAI) reuse it, tool schema
//! included; what changes per message (today's date, the candidate services,
//! the message itself) goes in the user message.

use std::path::{Path, PathBuf};

use crate::util::template::{self, TemplateError};

/// The folder tried when none is configured.
pub const DEFAULT_DIR: &str = "prompts";

const FILES: [&str; 3] = ["understand.md", "amend.md", "repair.md"];

/// What the understand and amend prompts may name: everything
/// [`super::Understander`] fills in for one message.
pub const MESSAGE_VARS: [&str; 7] = [
    "today",
    "services",
    "templates",
    "teams",
    "schema",
    "proposal",
    "message",
];

/// What the repair prompt may name: why the answer could not be used.
pub const REPAIR_VARS: [&str; 1] = ["error"];

const EMBEDDED: [(&str, &str); 3] = [
    (
        "understand.md",
        include_str!("../../../prompts/understand.md"),
    ),
    ("amend.md", include_str!("../../../prompts/amend.md")),
    ("repair.md", include_str!("../../../prompts/repair.md")),
];

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("cannot read prompt {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("prompt {path}: the first line must be `version: NAME`")]
    NoVersion { path: String },
    /// A template that does not parse or names a variable Paver does not
    /// fill: found when prompts load, not when a user is waiting.
    #[error("prompt {0}")]
    Template(#[from] TemplateError),
}

/// The line between a prompt's system and user templates.
pub const USER_MARKER: &str = "=== user ===";

/// One prompt template and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub version: String,
    /// The system message template.
    pub body: String,
    /// The user message template (`{{message}}` when the file has none).
    pub user: String,
}

/// Which part of a prompt a template error is about.
fn part(path: &str, which: &str) -> String {
    format!("{path} ({which} message)")
}

impl Prompt {
    /// Reads a prompt file's text and checks both its templates against
    /// `vars`, the names Paver fills for it.
    pub fn parse(path: &str, text: &str, vars: &[&str]) -> Result<Prompt, PromptError> {
        let text = text.trim_start_matches('\u{feff}');
        let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
        let version = first
            .trim()
            .strip_prefix("version:")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| PromptError::NoVersion {
                path: path.to_owned(),
            })?;
        let (system, user) = match rest.split_once(&format!("\n{USER_MARKER}\n")) {
            Some((s, u)) => (s, u),
            None => match rest.trim_start().strip_prefix(USER_MARKER) {
                Some(u) => ("", u),
                None => (rest, "{{message}}"),
            },
        };
        let prompt = Prompt {
            version: version.to_owned(),
            body: system.trim().to_owned(),
            user: user.trim().to_owned(),
        };
        template::check(&part(path, "system"), &prompt.body, vars)?;
        template::check(&part(path, "user"), &prompt.user, vars)?;
        Ok(prompt)
    }

    /// The system message, filled. Values are inserted as text, so user
    /// text holding `{{ … }}` is never expanded.
    pub fn render(&self, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        template::render(&part(&self.version, "system"), &self.body, vars)
    }

    /// The user message, filled (values as text, as for [`Prompt::render`]).
    pub fn render_user(&self, vars: &[(&str, &str)]) -> Result<String, TemplateError> {
        template::render(&part(&self.version, "user"), &self.user, vars)
    }
}

/// The prompts Paver uses and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompts {
    pub understand: Prompt,
    pub amend: Prompt,
    pub repair: Prompt,
    /// The folder they were read from; `None` for the built-in copies.
    pub source: Option<PathBuf>,
}

impl Prompts {
    /// The copies built into the binary (the repository's `prompts/`).
    pub fn embedded() -> Prompts {
        let get = |name: &str, vars: &[&str]| {
            let (_, text) = EMBEDDED
                .iter()
                .find(|(n, _)| *n == name)
                .expect("embedded prompt");
            // The test below checks every embedded prompt loads.
            Prompt::parse(name, text, vars).expect("embedded prompts are valid")
        };
        Prompts {
            understand: get("understand.md", &MESSAGE_VARS),
            amend: get("amend.md", &MESSAGE_VARS),
            repair: get("repair.md", &REPAIR_VARS),
            source: None,
        }
    }

    /// Reads the prompts from `dir`; every file must be there.
    pub fn from_dir(dir: &Path) -> Result<Prompts, PromptError> {
        let read = |name: &str, vars: &[&str]| {
            let path = dir.join(name);
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| PromptError::Read {
                path: shown.clone(),
                source,
            })?;
            Prompt::parse(&shown, &text, vars)
        };
        Ok(Prompts {
            understand: read(FILES[0], &MESSAGE_VARS)?,
            amend: read(FILES[1], &MESSAGE_VARS)?,
            repair: read(FILES[2], &REPAIR_VARS)?,
            source: Some(dir.to_path_buf()),
        })
    }

    /// `configured` when given (it must hold every prompt); else `prompts/`
    /// in the working directory when it has them; else the built-in copies.
    pub fn load(configured: Option<&Path>) -> Result<Prompts, PromptError> {
        if let Some(dir) = configured {
            return Self::from_dir(dir);
        }
        let default = Path::new(DEFAULT_DIR);
        if FILES.iter().all(|f| default.join(f).is_file()) {
            return Self::from_dir(default);
        }
        Ok(Self::embedded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_rendering() {
        let vars = ["name", "other", "message"];
        let p = Prompt::parse(
            "x",
            "version: v7\n\nHello {{name}}, {{ other }}\n=== user ===\nSaid: {{message}}",
            &vars,
        )
        .unwrap();
        // User text holding `{{ … }}` is inserted, never expanded.
        assert_eq!(
            p.render_user(&[("message", "{{name}}")]).unwrap(),
            "Said: {{name}}"
        );
        assert_eq!(p.version, "v7");
        assert_eq!(
            p.render(&[("name", "{{other}}"), ("other", "b")]).unwrap(),
            "Hello {{other}}, b"
        );
        assert!(Prompt::parse("x", "no version here", &vars).is_err());
        let e = Prompts::embedded();
        assert_eq!(e.understand.version, "understand-3");
        assert!(e.understand.user.contains("{{services}}"));
        assert!(
            !e.understand.body.contains("{{services}}"),
            "the system part never changes"
        );
        assert_eq!(e.repair.body, "");
        // llama-cpp-python's function-calling chat template HTML-escapes
        // message text: each quote became `&#34;`, four tokens, and the
        // understand prompt a third longer than written.
        for p in [&e.understand, &e.amend, &e.repair] {
            for text in [&p.body, &p.user] {
                assert!(
                    !text.contains(['"', '<', '>', '&', '\'']),
                    "{}: a character a chat template escapes",
                    p.version
                );
            }
        }
        // The repository's prompts are the embedded ones, and they load.
        assert_eq!(
            Prompts::from_dir(Path::new(DEFAULT_DIR))
                .unwrap()
                .understand,
            e.understand
        );
    }

    /// A prompt naming a variable Paver does not fill is refused when the
    /// prompts load, naming the file and the part.
    #[test]
    fn unknown_variables_are_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        for f in FILES {
            std::fs::copy(Path::new(DEFAULT_DIR).join(f), dir.path().join(f)).unwrap();
        }
        assert!(Prompts::from_dir(dir.path()).is_ok());
        let repair = dir.path().join("repair.md");
        std::fs::write(
            &repair,
            "version: repair-x\n=== user ===\nThat failed: {{ error }}. Services: {{ services }}",
        )
        .unwrap();
        let err = Prompts::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("repair.md (user message)") && err.contains("services"),
            "{err}"
        );
        let err = Prompt::parse(
            "p.md",
            "version: 1\n{{ todya }}\n=== user ===\n{{message}}",
            &MESSAGE_VARS,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("p.md (system message)"), "{err}");
        assert!(Prompt::parse("p.md", "version: 1\n{{ unclosed", &MESSAGE_VARS).is_err());
    }
}
