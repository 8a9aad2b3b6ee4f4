//! `paver docs search` and `paver docs eval`: office hours' retrieval from
//! the terminal — what the index finds for a question, and how well it finds
//! the answers of a question set.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use paver::config::Config;
use paver::docs::{eval, Docs, DocsConfig, DocsSource, LiveDocs};

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    /// The sections that best answer QUERY, with scores.
    Search {
        /// A docs root (mkdocs.yml, docs/); overrides [[docs.sources]]. Repeatable.
        #[arg(long = "docs", value_name = "DIR")]
        docs: Vec<PathBuf>,
        /// An array of {path, heading, url, score}.
        #[arg(long)]
        json: bool,
        /// How many sections.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// The question (several words need no quotes).
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
    },
    /// Score retrieval on a question set (JSONL with `expect`).
    Eval {
        file: PathBuf,
        /// A docs root (mkdocs.yml, docs/); overrides [[docs.sources]]. Repeatable.
        #[arg(long = "docs", value_name = "DIR")]
        docs: Vec<PathBuf>,
        /// Exit non-zero when recall@3 on answerable questions is below this (0–1).
        #[arg(long, value_name = "FRACTION")]
        min_recall: Option<f64>,
    },
}

/// `config` is read only when no `--docs` is given.
pub fn run(
    config: impl FnOnce() -> anyhow::Result<Config>,
    command: DocsCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        DocsCommand::Search {
            docs,
            json,
            k,
            query,
        } => {
            let docs = load(config, &docs)?;
            let hits = docs.search(&query.join(" "), k);
            if json {
                let out: Vec<_> = hits
                    .iter()
                    .map(|h| json!({"path": h.path, "heading": h.heading, "url": h.url, "score": h.score}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if hits.is_empty() {
                println!("nothing found");
            } else {
                for h in &hits {
                    let flag = if h.answerable {
                        ""
                    } else {
                        "  (weak: don't know)"
                    };
                    println!(
                        "{:7.3}  {} › {}{flag}\n         {}  coverage {:.2}",
                        h.score,
                        h.path,
                        h.heading_path.join(" › "),
                        h.url,
                        h.coverage
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DocsCommand::Eval {
            file,
            docs,
            min_recall,
        } => {
            let docs = load(config, &docs)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let cases =
                eval::parse(&text).with_context(|| format!("parsing {}", file.display()))?;
            let r = eval::run(&docs, &cases);
            println!(
                "answerable {}: recall@1 {:.3} ({}), recall@3 {:.3} ({}), \"don't know\" to {}",
                r.answerable,
                r.recall_at1(),
                r.at1,
                r.recall_at3(),
                r.at3,
                r.answerable_dont_know
            );
            println!(
                "unanswerable {}: \"don't know\" {:.3} ({})",
                r.unanswerable,
                r.dont_know_share(),
                r.dont_know
            );
            for m in &r.misses {
                let expected = if m.expected.is_empty() {
                    "don't know".to_owned()
                } else {
                    m.expected
                        .iter()
                        .map(|e| format!("{} › {}", e.path, e.heading))
                        .collect::<Vec<_>>()
                        .join(" | ")
                };
                let decided = if m.said_dont_know {
                    "don't know"
                } else {
                    "answered"
                };
                println!("miss {} {:?}", m.id, m.question);
                println!("  expected: {expected}");
                println!("  got ({decided}): {}", m.got.join(" | "));
            }
            match min_recall {
                Some(min) if r.recall_at3() < min => {
                    eprintln!("recall@3 {:.3} is below {min}", r.recall_at3());
                    Ok(ExitCode::FAILURE)
                }
                _ => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

/// The configured sources (git ones cloned or pulled now), or `dirs`.
fn load(
    config: impl FnOnce() -> anyhow::Result<Config>,
    dirs: &[PathBuf],
) -> anyhow::Result<Arc<Docs>> {
    let docs_config = if dirs.is_empty() {
        let docs_config = config()?.docs;
        anyhow::ensure!(
            !docs_config.sources.is_empty(),
            "no docs: configure [[docs.sources]] or give --docs DIR"
        );
        docs_config
    } else {
        DocsConfig {
            sources: dirs.iter().map(|d| DocsSource::at(d.as_path())).collect(),
            ..DocsConfig::default()
        }
    };
    let describe = docs_config
        .sources
        .iter()
        .map(DocsSource::describe)
        .collect::<Vec<_>>()
        .join(", ");
    // The same reading `paver serve` does, once.
    let live = LiveDocs::new(&docs_config);
    let refresh = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(live.refresh_now());
    match live.current() {
        Some(docs) if refresh.failed.is_empty() => Ok(docs),
        _ => anyhow::bail!(
            "loading the docs from {describe}: {}",
            refresh.failed.join("; ")
        ),
    }
}
