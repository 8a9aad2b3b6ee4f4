//! `paver docs search` and `paver docs eval`: office hours' retrieval from
//! the terminal — what the index finds for a question, and how well it finds
//! the answers of a question set. `paver docs gaps` and `paver docs agenda`:
//! what people asked that the docs miss, and the office-hours agenda.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use paver::chat::dispatcher::Dispatcher;
use paver::chat::send::Sender;
use paver::config::Config;
use paver::docs::{eval, office_hours, Docs, DocsConfig, DocsSource, LiveDocs};

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
    /// The questions the docs miss (not known, or voted not helpful),
    /// most asked first.
    Gaps {
        /// Questions of the last N days.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// An array of {question, count, unanswered, not_helpful, last_asked, nearest}.
        #[arg(long)]
        json: bool,
    },
    /// The office-hours agenda: the tagged questions no agenda listed yet.
    Agenda {
        /// Print it; post and record nothing (the scheduler posts it).
        #[arg(long, required = true)]
        dry_run: bool,
        /// Backstage catalog YAML; overrides the configured catalog.
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
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
        DocsCommand::Gaps { days, json } => gaps(&config()?, days, json),
        DocsCommand::Agenda { dry_run, catalog } => agenda(&config()?, dry_run, catalog),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn open_db(config: &Config) -> anyhow::Result<paver::storage::Db> {
    paver::storage::Db::connect(&config.database.url)
        .await
        .with_context(|| format!("opening {}", paver::util::redact_url(&config.database.url)))
}

/// `paver docs gaps`.
fn gaps(config: &Config, days: u32, json: bool) -> anyhow::Result<ExitCode> {
    let gaps = runtime()?.block_on(async {
        let db = open_db(config).await?;
        anyhow::Ok(office_hours::gaps(&db, days, paver::storage::now_ms()).await?)
    })?;
    let when = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    if json {
        let out: Vec<_> = gaps
            .iter()
            .map(|g| {
                json!({
                    "question": g.question,
                    "count": g.count,
                    "unanswered": g.unanswered,
                    "not_helpful": g.not_helpful,
                    "last_asked": when(g.last_asked),
                    "nearest": g.nearest.as_ref().map(|n| json!({"path": n.path, "heading": n.heading, "url": n.url})),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if gaps.is_empty() {
        println!("no gaps in the last {days} days: every question was answered and nobody voted an answer down");
    } else {
        println!("asked  unanswered  👎  last asked            question");
        for g in &gaps {
            println!(
                "{:5}  {:10}  {:2}  {}  {}",
                g.count,
                g.unanswered,
                g.not_helpful,
                when(g.last_asked),
                g.question
            );
            if let Some(n) = &g.nearest {
                println!("{:46}nearest: {} ({})", "", n.heading, n.url);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `paver docs agenda --dry-run`.
fn agenda(config: &Config, dry_run: bool, catalog: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(dry_run, "only --dry-run: the scheduler posts the agenda");
    let run = runtime()?.block_on(async {
        let catalog = paver::app::load_catalog(config, catalog.as_deref()).await?;
        let db = open_db(config).await?;
        // No sinks: a dry run sends nothing.
        let dispatcher = Dispatcher::new(db.clone(), Default::default(), paver::app::pace(config));
        let send = Sender::new(
            db.clone(),
            dispatcher,
            catalog.clone(),
            config.golden_path(),
        );
        let flow =
            office_hours::OfficeHours::new(db, catalog, send, config.docs.office_hours.clone());
        anyhow::Ok(flow.run_agenda(chrono::Utc::now(), true).await?)
    })?;
    match run.preview {
        Some(p) => println!("{p}"),
        None => println!("(no question is tagged for office hours)"),
    }
    Ok(ExitCode::SUCCESS)
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
