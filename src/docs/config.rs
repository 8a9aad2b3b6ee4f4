//! `[docs]`: the folders of Markdown that office hours answers from.

use std::path::PathBuf;

use serde::Deserialize;

/// The names a source's `url_template` may use.
pub const URL_NAMES: &[&str] = &["path", "anchor"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DocsConfig {
    /// Docs roots in the MkDocs/TechDocs layout (`mkdocs.yml`, `docs/`).
    pub sources: Vec<DocsSource>,
    /// Whether answers are written by the `[llm]` model (when one is
    /// configured) rather than quoted. On by default, so configuring the
    /// LLM once turns on both understanding and answering.
    pub llm: bool,
}

impl Default for DocsConfig {
    fn default() -> Self {
        DocsConfig {
            sources: Vec::new(),
            llm: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocsSource {
    /// The root: the folder holding `mkdocs.yml` (relative paths are read
    /// from the working directory, as `catalog.file` is).
    pub dir: PathBuf,
    /// A section's link. `{{ path }}` is the page's MkDocs URL
    /// (`databases/postgres/`), `{{ anchor }}` the heading's id.
    #[serde(default = "default_url_template")]
    pub url_template: String,
}

fn default_url_template() -> String {
    // Without a site to point at, the page's path still tells where to look.
    "{{ path }}#{{ anchor }}".into()
}

impl DocsSource {
    /// A source at `dir` with the default link template.
    pub fn at(dir: impl Into<PathBuf>) -> DocsSource {
        DocsSource {
            dir: dir.into(),
            url_template: default_url_template(),
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
            if !s.dir.is_dir() {
                out.push(format!(
                    "docs.sources[{i}].dir: {} is not a folder",
                    s.dir.display()
                ));
            }
        }
        out
    }
}
