//! Office hours' retrieval: Markdown docs in the MkDocs/TechDocs layout,
//! split by heading into sections and indexed in RAM for full-text search,
//! with a "don't know" decision for questions the docs do not answer.
//!
//! Loaded from the configured sources (`[[docs.sources]]`: folders, git
//! repositories); `live` keeps them current, re-reading only changed pages.

pub mod answer;
pub mod config;
pub mod embed;
pub mod eval;
pub mod git;
mod index;
pub mod live;
pub mod office_hours;
pub mod reply;
pub mod sections;
pub mod source;
mod vocab;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub use config::{DocsConfig, DocsSource, OfficeHoursConfig};
pub use live::LiveDocs;

/// Why the docs could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Mkdocs { path: PathBuf, detail: String },
    #[error("{0}: no docs folder (mkdocs.yml's docs_dir, default docs/)")]
    NoDocsDir(PathBuf),
    #[error("{0}")]
    Template(#[from] crate::util::template::TemplateError),
    #[error("the search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("{0} is a git source: read it through docs::LiveDocs, which clones it")]
    NotAFolder(String),
    #[error(transparent)]
    Git(#[from] git::GitError),
}

/// A section found for a question.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The page, relative to its docs root: `docs/databases/postgres.md`.
    pub path: String,
    /// The page's title (the nav's).
    pub title: String,
    pub heading: String,
    /// Headings from the page's top down to this one.
    pub heading_path: Vec<String>,
    /// The section's link, from its source's `url_template`.
    pub url: String,
    /// BM25 with field boosts and phrase matches, scaled by coverage:
    /// comparable within one search only.
    pub score: f32,
    /// The share of the question's words (weighed by how much each says)
    /// the section holds, 0–1: what "don't know" is decided on.
    pub coverage: f32,
    /// Whether this section is good enough to answer from.
    pub answerable: bool,
    /// The question's words this section does not hold, as typed: what a
    /// "don't know" was decided on, worth showing when tuning.
    pub missing: Vec<String>,
    pub text: String,
}

/// What the docs say to a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The section to answer from.
    Answerable(Hit),
    /// The docs do not answer it; the nearest section, if any, for "you
    /// could look at …".
    NotKnown { nearest: Option<Hit> },
}

/// One indexed section and where it came from.
#[derive(Debug, Clone)]
struct Entry {
    path: String,
    title: String,
    section: sections::Section,
    url: String,
}

/// The "don't know" rule: a section answers a question when it holds at
/// least this share of the question's words, each word weighed by how much
/// it says (`index::Index::weight`: rare in the docs *and* rare in everyday
/// English). A question about something the docs never name ("cassandra",
/// "websockets", "datadog") has its heaviest word missing from every
/// section and falls below the line; chat around the subject ("yesterday",
/// "quick q", "noisy") weighs little and does not pull an answerable
/// question under it.
///
/// Validated on Paver's own question sets, not on the public one: it is the
/// lowest line (to 0.05) at which every unanswerable question of
/// `tests/data/docs_chat_tune.jsonl` gets "don't know" (the highest of them
/// covers 0.60); the held-out set then measures it
/// (`tests/docs.rs`).
const MIN_COVERAGE: f32 = 0.6;

fn answerable(c: &index::Coverage) -> bool {
    c.share >= MIN_COVERAGE
}

/// All configured docs, indexed.
pub struct Docs {
    entries: Vec<Entry>,
    index: index::Index,
    /// The sections' vectors, once embedded (`[docs.embeddings]`): set
    /// after the snapshot is built, so questions asked meanwhile are
    /// answered by BM25 alone.
    semantic: OnceLock<Semantic>,
}

/// Each section's vector (by section id) and the embedder that made them,
/// which embeds questions alike.
struct Semantic {
    embedder: Arc<embed::Embedder>,
    vectors: Vec<embed::Vector>,
}

/// Reciprocal rank fusion's constant (Cormack et al., 2009: 60): how
/// little the first few ranks of one list outweigh the rest.
const RRF_K: f32 = 60.0;

/// How deep each ranking is read for fusion: as deep as BM25's re-ranking.
const FUSION_DEPTH: usize = 30;

impl std::fmt::Debug for Docs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The index itself is not worth printing.
        f.debug_struct("Docs").finish_non_exhaustive()
    }
}

impl Docs {
    /// Reads and indexes every source (folders only: a git source must be
    /// cloned first, which [`LiveDocs`] does). A source that cannot be
    /// read is an error: answering from half the docs without saying so
    /// misleads.
    pub fn load(sources: &[DocsSource]) -> Result<Docs, DocsError> {
        let mut pages = Vec::new();
        for s in sources {
            crate::util::template::check("url_template", &s.url_template, config::URL_NAMES)?;
            let config::Origin::Dir(dir) = &s.origin else {
                return Err(DocsError::NotAFolder(s.describe()));
            };
            for page in source::read(dir)? {
                pages.push(SplitPage::new(&s.url_template, &page)?);
            }
        }
        Docs::from_pages(&pages)
    }

    /// Indexes pages already split, in the order given: what [`LiveDocs`]
    /// rebuilds from, re-splitting only the pages that changed.
    pub fn from_pages<'a>(
        pages: impl IntoIterator<Item = &'a SplitPage>,
    ) -> Result<Docs, DocsError> {
        let entries: Vec<Entry> = pages
            .into_iter()
            .flat_map(|p| p.entries.iter().cloned())
            .collect();
        let texts: Vec<(String, String)> = entries
            .iter()
            .map(|e| {
                // Headings above this one, below the page's own (the page
                // title is a field of its own).
                let parents = e
                    .section
                    .heading_path
                    .iter()
                    .take(e.section.heading_path.len().saturating_sub(1))
                    .skip(1)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n");
                let title = match e.section.heading_path.first() {
                    Some(h1) if *h1 != e.title => format!("{}\n{h1}", e.title),
                    _ => e.title.clone(),
                };
                (title, parents)
            })
            .collect();
        let docs: Vec<index::Doc<'_>> = entries
            .iter()
            .zip(&texts)
            .map(|(e, (title, parents))| index::Doc {
                title,
                parents,
                heading: if e.section.level == 0 {
                    ""
                } else {
                    &e.section.heading
                },
                body: &e.section.text,
            })
            .collect();
        let index = index::Index::build(&docs)?;
        Ok(Docs {
            entries,
            index,
            semantic: OnceLock::new(),
        })
    }

    /// How many sections are indexed.
    pub fn sections(&self) -> usize {
        self.index.len()
    }

    /// The text a section is embedded as: where it sits, then what it says.
    fn embedding_input(e: &Entry) -> String {
        let mut path = vec![e.title.as_str()];
        path.extend(
            e.section
                .heading_path
                .iter()
                .map(String::as_str)
                .filter(|h| *h != e.title),
        );
        format!("{}\n\n{}", path.join(" › "), e.section.text)
    }

    /// Embeds every section with `embedder` (reusing the vectors of
    /// sections it embedded before) so searches given a question's vector
    /// fuse both rankings. Once per snapshot; a second call does nothing.
    pub async fn embed(&self, embedder: Arc<embed::Embedder>) -> Result<(), embed::EmbedError> {
        if self.semantic.get().is_some() {
            return Ok(());
        }
        let inputs: Vec<String> = self.entries.iter().map(Docs::embedding_input).collect();
        let vectors = embedder.embed_all(&inputs).await?;
        let _ = self.semantic.set(Semantic { embedder, vectors });
        Ok(())
    }

    /// Whether the sections are embedded.
    pub fn embedded(&self) -> bool {
        self.semantic.get().is_some()
    }

    /// The question's vector, when the sections are embedded and the
    /// server answers; `None` (BM25 alone) otherwise, logged.
    pub async fn near(&self, question: &str) -> Option<embed::Vector> {
        let s = self.semantic.get()?;
        match s.embedder.embed_one(question).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(embedder = %s.embedder.describe(), error = %e, "embedding a question failed; BM25 alone");
                None
            }
        }
    }

    /// The best `k` sections for `query`, best first, each flagged whether
    /// it is good enough to answer from.
    pub fn search(&self, query: &str, k: usize) -> Vec<Hit> {
        self.search_near(query, None, k)
    }

    /// [`Docs::search`], fused with embedding similarity to `near` (the
    /// question's vector, from [`Docs::near`]) when given.
    pub fn search_near(&self, query: &str, near: Option<&[f32]>, k: usize) -> Vec<Hit> {
        let words = self.index.read_question(query);
        let depth = if near.is_some() {
            k.max(FUSION_DEPTH)
        } else {
            k
        };
        let found = match self.index.search(&words, depth) {
            Ok(f) => f,
            Err(e) => {
                // The index is in RAM and built by us: a failure here is a
                // bug, not a state to answer from.
                tracing::error!(error = %e, "docs search failed");
                return Vec::new();
            }
        };
        let found = match (near, self.semantic.get()) {
            (Some(near), Some(s)) => self.fuse(&words, found, near, s, k),
            _ => found,
        };
        found
            .into_iter()
            .filter_map(|f| {
                let e = self.entries.get(f.id)?;
                let coverage = f.coverage.share;
                let answerable = answerable(&f.coverage);
                Some(Hit {
                    path: e.path.clone(),
                    title: e.title.clone(),
                    heading: e.section.heading.clone(),
                    heading_path: e.section.heading_path.clone(),
                    url: e.url.clone(),
                    score: f.score,
                    coverage,
                    answerable,
                    missing: f.coverage.missing,
                    text: e.section.text.clone(),
                })
            })
            .collect()
    }

    /// BM25's ranking and the sections nearest `near`, fused by reciprocal
    /// rank: robust to the two scores' different scales, and a section
    /// both rank high wins. The score becomes the fused one.
    fn fuse(
        &self,
        words: &[index::QueryWord],
        lexical: Vec<index::Found>,
        near: &[f32],
        s: &Semantic,
        k: usize,
    ) -> Vec<index::Found> {
        let mut by_vector: Vec<(usize, f32)> = s
            .vectors
            .iter()
            .enumerate()
            .map(|(id, v)| (id, embed::cosine(v, near)))
            .collect();
        by_vector.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        by_vector.truncate(FUSION_DEPTH);
        let mut fused: std::collections::BTreeMap<usize, f32> = Default::default();
        for (rank, f) in lexical.iter().enumerate() {
            *fused.entry(f.id).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
        for (rank, (id, _)) in by_vector.iter().enumerate() {
            *fused.entry(*id).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
        let mut out: Vec<index::Found> = fused
            .into_iter()
            .map(|(id, score)| index::Found {
                id,
                score,
                coverage: self.index.coverage(words, id),
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        out.truncate(k);
        out
    }

    /// The section to answer `question` from, or "don't know".
    pub fn best(&self, question: &str) -> Answer {
        self.best_near(question, None)
    }

    /// [`Docs::best`] with the question's vector.
    pub fn best_near(&self, question: &str, near: Option<&[f32]>) -> Answer {
        // Among the top few, the one covering the question best: BM25 may
        // rank a long section on one frequent word above the one that
        // holds every word of the question.
        let hits = self.search_near(question, near, 3);
        let top = hits.first().cloned();
        match hits.into_iter().find(|h| h.answerable) {
            Some(h) => Answer::Answerable(h),
            None => Answer::NotKnown { nearest: top },
        }
    }
}

/// One page split into sections, each with its link: the unit [`Docs`] is
/// built from and [`LiveDocs`] keeps per page.
#[derive(Debug, Clone)]
pub struct SplitPage {
    entries: Vec<Entry>,
}

impl SplitPage {
    /// `page` split by heading, linked with its source's `url_template`.
    pub fn new(url_template: &str, page: &source::Page) -> Result<SplitPage, DocsError> {
        let title = page
            .title
            .clone()
            .or_else(|| first_heading(&page.markdown))
            .unwrap_or_else(|| page.doc_path.clone());
        let url_path = source::page_url(&page.doc_path);
        let mut entries = Vec::new();
        for section in sections::split(&title, &page.markdown) {
            let url = crate::util::template::render(
                "url_template",
                url_template,
                &[("path", &url_path), ("anchor", &section.anchor)],
            )?;
            // The top of a page needs no `#`.
            let url = url.strip_suffix('#').map(str::to_owned).unwrap_or(url);
            entries.push(Entry {
                path: page.path.clone(),
                title: title.clone(),
                section,
                url,
            });
        }
        Ok(SplitPage { entries })
    }

    /// How many sections the page has.
    pub fn sections(&self) -> usize {
        self.entries.len()
    }
}

fn first_heading(markdown: &str) -> Option<String> {
    markdown
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .map(|h| h.trim().to_owned())
}
