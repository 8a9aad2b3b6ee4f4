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

/// The folder tried when none is configured.
pub const DEFAULT_DIR: &str = "prompts";

const FILES: [&str; 3] = ["understand.md", "amend.md", "repair.md"];

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

impl Prompt {
    pub fn parse(path: &str, text: &str) -> Result<Prompt, PromptError> {
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
        Ok(Prompt {
            version: version.to_owned(),
            body: system.trim().to_owned(),
            user: user.trim().to_owned(),
        })
    }

    /// The system message with each `{{key}}` replaced.
    pub fn render(&self, vars: &[(&str, &str)]) -> String {
        fill(&self.body, vars)
    }

    /// The user message with each `{{key}}` replaced.
    pub fn render_user(&self, vars: &[(&str, &str)]) -> String {
        fill(&self.user, vars)
    }
}

/// `template` with each `{{key}}` replaced. Values are inserted once, so a
/// value that itself holds `{{…}}` (user text) is never expanded.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                match vars.iter().find(|(k, _)| *k == key) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
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
        let get = |name: &str| {
            let (_, text) = EMBEDDED
                .iter()
                .find(|(n, _)| *n == name)
                .expect("embedded prompt");
            Prompt::parse(name, text).expect("embedded prompts have a version line")
        };
        Prompts {
            understand: get("understand.md"),
            amend: get("amend.md"),
            repair: get("repair.md"),
            source: None,
        }
    }

    /// Reads the prompts from `dir`; every file must be there.
    pub fn from_dir(dir: &Path) -> Result<Prompts, PromptError> {
        let read = |name: &str| {
            let path = dir.join(name);
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|source| PromptError::Read {
                path: shown.clone(),
                source,
            })?;
            Prompt::parse(&shown, &text)
        };
        Ok(Prompts {
            understand: read(FILES[0])?,
            amend: read(FILES[1])?,
            repair: read(FILES[2])?,
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
        let p = Prompt::parse(
            "x",
            "version: v7\n\nHello {{name}}, {{ other }} {{unknown}}\n=== user ===\nSaid: {{message}}",
        )
        .unwrap();
        assert_eq!(p.render_user(&[("message", "{{name}}")]), "Said: {{name}}");
        assert_eq!(p.version, "v7");
        assert_eq!(
            p.render(&[("name", "{{other}}"), ("other", "b")]),
            "Hello {{other}}, b {{unknown}}"
        );
        assert!(Prompt::parse("x", "no version here").is_err());
        let e = Prompts::embedded();
        assert_eq!(e.understand.version, "understand-1");
        assert!(e.understand.user.contains("{{services}}"));
        assert!(
            !e.understand.body.contains("{{services}}"),
            "the system part never changes"
        );
        assert_eq!(e.repair.body, "");
    }
}
